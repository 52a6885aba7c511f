"""The configurations the benchmark times: (cell, B, T, I, H, dtype) rows, grouped into named grids."""

from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Row:
    cell: str  # "lstm" | "gru" | "rnn" (tanh)
    batch: int
    steps: int
    input_size: int
    hidden: int
    dtype: str  # a key of DTYPES
    directions: int = 1  # 2: a bidirectional layer (not in the grids below; experiments/kernels/knob_ab.py)

    @property
    def label(self) -> str:
        label = f"{self.cell} B={self.batch} T={self.steps} I={self.input_size} H={self.hidden} {self.dtype}"
        return label + (" bidirectional" if self.directions == 2 else "")


def _rows(shapes, cells, dtypes):
    return [Row(c, b, t, i, h, d) for d in dtypes for c in cells for (b, t, i, h) in shapes]


# The CPU targets of the core issue: the reference path against torch.nn's CPU implementation.
CPU_SHAPES = [(32, 100, 64, 128), (16, 256, 256, 256), (64, 50, 128, 512)]

# The H100 rows of shared/device/README.md, where cuDNN was already measured (I = H except the second row).
CUDA_SHAPES = {
    "lstm": [
        (16, 1024, 128, 128),
        (32, 100, 64, 128),
        (64, 256, 512, 512),
        (16, 512, 768, 768),
        (256, 128, 1024, 1024),
        (8, 256, 2048, 2048),
    ],
    "gru": [(16, 1024, 128, 128), (64, 256, 512, 512)],
    "rnn": [(16, 1024, 128, 128), (64, 256, 512, 512)],
}


def grid(device: str, quick: bool, cells: list[str], dtypes: list[str] | None) -> list[Row]:
    """quick on the CPU: the three target shapes in fp32 (about 15 seconds on 2 cores);
    full on the CPU adds bf16. On CUDA: the device README's rows, quick in fp32 and bf16 only."""
    if device == "cpu":
        chosen = dtypes or (["fp32"] if quick else ["fp32", "bf16"])
        return _rows(CPU_SHAPES, cells, chosen)
    chosen = dtypes or (["fp32", "bf16"] if quick else ["fp32", "bf16", "fp16"])
    rows = []
    for d in chosen:
        for c in cells:
            shapes = CUDA_SHAPES[c][:2] if quick else CUDA_SHAPES[c]
            rows += [Row(c, b, t, i, h, d) for (b, t, i, h) in shapes]
    return rows
