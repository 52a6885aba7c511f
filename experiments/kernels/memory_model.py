"""Peak memory of the triton backend's forward+backward, counted on the CPU: what `rnnlab-bench --device cuda`
records in its `peak_mb` column, without a GPU.

    python experiments/kernels/memory_model.py                      # every CUDA row, all dtypes (~6 min)
    python experiments/kernels/memory_model.py --dtypes fp32 --csv /tmp/m.csv
    python experiments/kernels/memory_model.py --bidirectional --dtypes bf16   # as bidirectional layers

The benchmark's own forward+backward (rnnlab.bench.measure: make_case, steps_for) runs on CPU tensors with
every Triton kernel launch replaced by a no-op: each buffer the kernels would fill is still allocated exactly
as on the GPU, and every torch op around them (input projection, weight-gradient GEMMs) runs for real. A
dispatch mode counts the storages created inside the call, each rounded up to 512 bytes as CUDA's caching
allocator does, and frees them when Python drops them; the peak of the live total is the model. What it
cannot see: allocations inside cuBLAS/Triton, and the caching allocator's 2 MB rounding of large blocks.

Printed beside it: the triton and cuDNN peaks measured on the H100 in a bench CSV (default: run 4,
h100-run4/bench-cuda.csv). Checked against run 3 by running this script on that run's code (05861dc): see
README.md, "memory". `memory_peak.py` lists what the model holds at its peak, and on a GPU what the
allocator does.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import os
import sys
import traceback
import weakref
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")  # the triton backend must be selectable without a GPU

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rnnlab.bench.grid import Row, grid
from rnnlab.bench.measure import make_case, steps_for
from rnnlab.bench.report import read_column

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]  # the repository
THIS_FILE = Path(__file__).resolve()  # the counting mode's own frames are not a site
ALLOCATION_GRANULE = 512  # bytes: the CUDA caching allocator's rounding of every block


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages created by ops inside the block and still referenced; ``peak`` its maximum.
    With ``sites``, also what was alive at the peak: ``at_peak`` maps each storage to (bytes, the op that
    made it, the innermost Python frame of this project that called it)."""

    def __init__(self, existing: list[torch.Tensor], sites: bool = False):
        super().__init__()
        self.live: dict[int, int] = {t.untyped_storage().data_ptr(): 0 for t in existing}
        self.current = self.peak = 0
        self.sites: dict[int, tuple[int, str, str]] | None = {} if sites else None
        self.at_peak: dict[int, tuple[int, str, str]] = {}

    def _count(self, tensor: torch.Tensor, op: str) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key in self.live or storage.nbytes() == 0:
            return
        size = -(-storage.nbytes() // ALLOCATION_GRANULE) * ALLOCATION_GRANULE
        self.live[key] = size
        self.current += size
        if self.sites is not None:
            self.sites[key] = (size, op, project_site(traceback.extract_stack()[::-1]))
        if self.current > self.peak:
            self.peak = self.current
            if self.sites is not None:
                self.at_peak = dict(self.sites)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)
        if self.sites is not None:
            self.sites.pop(key, None)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self._count(t, func.overloadpacket.__name__)
        return out


def project_site(frames, depth: int = 2) -> str:
    """Where an allocation was made: the ``depth`` innermost frames in this project's own code (rnnlab/,
    kernels/, experiments/), as ``file:line function`` joined by " < " (callee < caller). ``frames``:
    traceback FrameSummary objects or the allocator's {"filename", "line", "name"} dicts, innermost first,
    or outermost first when the first of ours is a script's (experiments/: the outermost of our frames);
    "-" when none is ours (an autograd node running in C++ on the backward thread)."""
    ours = []
    for frame in frames:
        name, line, func = (
            (frame["filename"], frame["line"], frame["name"])
            if isinstance(frame, dict)
            else (frame.filename, frame.lineno, frame.name)
        )
        path = Path(name)
        installed = path.is_relative_to(ROOT / ".venv") or "site-packages" in path.parts
        if path.is_relative_to(ROOT) and not installed and path != THIS_FILE:
            ours.append((path.relative_to(ROOT), line, func))
    if not ours:
        return "-"
    if ours[0][0].parts[0] == "experiments":
        ours.reverse()  # given outermost first: the script's own frame came first
    return " < ".join(f"{path}:{line} {func}" for path, line, func in ours[:depth])


@contextlib.contextmanager
def kernel_launches_stubbed():
    """Inside the block every ``kernel[grid](...)`` is a no-op (compiled or interpreted Triton functions)."""
    from triton.runtime import interpreter, jit

    classes = (jit.JITFunction, interpreter.InterpretedFunction)
    saved = [cls.__dict__.get("__getitem__") for cls in classes]
    for cls in classes:
        cls.__getitem__ = lambda self, grid: lambda *args, **kwargs: None
    try:
        yield
    finally:
        for cls, original in zip(classes, saved, strict=True):
            if original is None:
                del cls.__getitem__
            else:
                cls.__getitem__ = original


def modeled_peak_mb(row: Row) -> float:
    """The triton backend's peak MB for one forward+backward of ``row``, as the benchmark measures it (the
    layer, input and output gradient exist before the call and are not counted)."""
    return modeled_peak(row).peak / 2**20


def modeled_peak(row: Row, sites: bool = False, backend: str = "triton") -> LiveBytes:
    """The counting mode after one forward+backward of ``row`` on CPU tensors (``sites``: with what was
    alive at the peak, see LiveBytes)."""
    layer, x, grad_out = make_case(row, "cpu")
    _, forward_backward = steps_for(layer, backend, x, grad_out)
    mode = LiveBytes([x, grad_out, *layer.parameters()], sites=sites)
    with kernel_launches_stubbed(), mode:
        grads = forward_backward()
        del grads
    return mode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dtypes", nargs="+", default=["fp32", "bf16", "fp16"], choices=["fp32", "bf16", "fp16"]
    )
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"], choices=["lstm", "gru", "rnn"])
    parser.add_argument("--measured", type=Path, default=HERE / "h100-run4" / "bench-cuda.csv")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table here")
    parser.add_argument(
        "--bidirectional", action="store_true", help="each row as a bidirectional layer (nothing measured)"
    )
    args = parser.parse_args(argv)
    measured = read_column(args.measured, "peak_mb") if args.measured.exists() else {}
    if args.bidirectional:
        measured = {}  # the GPU runs measured one-direction layers only
    header = [
        "cell",
        "B",
        "T",
        "I",
        "H",
        "dtype",
        "model MB",
        "measured triton MB",
        "cuDNN MB",
        "model / cuDNN",
    ]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    lines = []
    for row in grid("cuda", quick=False, cells=args.cells, dtypes=args.dtypes):
        row = dataclasses.replace(row, directions=2) if args.bidirectional else row
        key = (row.cell, row.batch, row.steps, row.input_size, row.hidden, row.dtype)
        model = modeled_peak_mb(row)
        got = measured.get(key, {})
        cudnn, triton = got.get("cudnn"), got.get("triton")
        ratio = f"{model / cudnn:.2f}" if cudnn else "-"
        line = [
            *map(str, key),
            f"{model:.0f}",
            f"{triton:.0f}" if triton else "-",
            f"{cudnn:.0f}" if cudnn else "-",
        ]
        lines.append([*line, ratio])
        print("| " + " | ".join(lines[-1]) + " |", flush=True)
    if args.csv:
        with args.csv.open("w", newline="") as f:
            csv.writer(f).writerows([header, *lines])
    return 0


if __name__ == "__main__":
    sys.exit(main())
