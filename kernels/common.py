"""What the three fused recurrences share: availability, block sizes, activations, and small torch helpers.

Design in one paragraph (details in experiments/kernels/README.md). All T steps run in one launch. When the
recurrent weight fits on chip (G * BH^2 <= ON_CHIP_ELEMENTS, BH = H padded to a power of two >= 16), one
program per tile of 16 batch rows loads it once, before the time loop, and keeps the state in registers
("on-chip" path). Otherwise ("tiled" path) the H output columns of each batch tile (16 to 64 rows) are split
across up to one program per SM: each program re-reads its columns of W_hh from L2 every step in
BLOCK_K x BLOCK_N tiles, reads the whole previous state from a small fp32 scratch buffer, writes its own
columns, and the programs of a batch tile meet at a grid barrier before the next step (``Plan``,
``device.step_sync``). The state is fp32 in both; the dot operands are in the input dtype, accumulated in
fp32. Each cell module registers its launchers as torch.library custom ops (``rnnlab::<cell>_fwd`` /
``_bwd``, with fake functions and autograd), so torch.compile traces them with fullgraph=True.

This module does not import Triton at import time, so ``rnnlab.kernels.supports``/``available`` work anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch

BLOCK_B = 16  # batch rows per program on chip; tl.dot needs M >= 16, so smaller batches are padded (masked)
# Rows per program on the tiled path, at most (more rows: fewer re-reads of W_hh per step), by gate count.
# GRU stays at 16: its backward with 64-row tiles gave wrong gradients on an H100 (B=37, H=200, fp16;
# experiments/kernels/README.md, "known problems") while 16-row tiles passed every GPU test.
MAX_BLOCK_B = {1: 64, 3: 16, 4: 64}
ON_CHIP_ELEMENTS = 16384  # G * BH^2 bound for keeping W_hh on chip: LSTM to H=64, GRU to 64, RNN to 128
RESIDENT_ELEMENTS = 16384  # G * BH * BLOCK_N bound for a program's slice of W_hh on the split path
RESIDENT_STATE = 8192  # BLOCK_B * BH bound for the state tile a resident program reads whole each step
TILE_NS = (16, 32, 64)  # tiled path: output columns per tile, the smallest that keeps the grid on the SMs
MAX_HIDDEN = 16384  # int32 offsets into W_hh (G*H*H) stay below 2^31 up to here
INTERPRETER_SMS = 4  # programs per batch tile under the interpreter: enough to exercise the split path
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
NONLINEARITIES = ("tanh", "relu", "sigmoid")

# Test hook: allocate every output and scratch buffer filled with NaN, so an element the kernel forgets to
# write fails the comparison instead of passing by luck. Off in normal use (torch.empty).
POISON = False


@functools.cache
def _triton_importable() -> bool:
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except ImportError:
        return False
    return True


def interpreted() -> bool:
    """True when Triton runs kernels with its numpy interpreter (TRITON_INTERPRET=1): correct, slow."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def available() -> bool:
    """Triton importable, and a CUDA device present or the interpreter switched on."""
    return _triton_importable() and (torch.cuda.is_available() or interpreted())


def supports(cell: str, hidden_size: int, dtype: torch.dtype, device: torch.device | str) -> bool:
    """Whether the compiled fused path runs this configuration: what ``backend="auto"`` should ask.

    True for cell in {"lstm", "gru", "rnn"}, 1 <= hidden_size <= MAX_HIDDEN, dtype fp32/bf16/fp16, on a CUDA
    device with Triton installed. A CPU device gives False even under TRITON_INTERPRET=1: the interpreter runs
    the kernels correctly (that is how the tests check them) but far too slowly to be an automatic choice;
    ask for the triton backend explicitly to use it.
    """
    device = torch.device(device)
    return (
        cell.lower() in CELLS
        and 1 <= hidden_size <= MAX_HIDDEN
        and dtype in DTYPES
        and device.type == "cuda"
        and _triton_importable()
        and torch.cuda.is_available()
    )


@dataclass(frozen=True)
class Plan:
    """How one forward or backward call is launched.

    grid = (batch tiles, column programs). On chip: one program per batch tile, one launch. Tiled: the H
    output columns of each batch tile are split across ``grid[1]`` programs (tiles of BLOCK_N columns, dealt
    round-robin); every step each reads the whole previous state and writes its own columns. Programs of a
    batch tile then meet at a grid barrier (``sync``: one launch for all T steps, possible on a GPU because
    the grid is sized to fit the SMs at once), or, under the interpreter (which runs programs one after
    another) or with RNNLAB_GRID_SYNC=0, each step is its own launch (the launch boundary is the barrier).
    """

    grid: tuple[int, int]
    meta: dict
    sync: bool

    @property
    def one_launch(self) -> bool:
        return self.sync or self.grid[1] == 1


def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return INTERPRETER_SMS


def resident_allowed() -> bool:
    """A switch for comparisons: RNNLAB_RESIDENT=0 streams W_hh from L2 every step even where it would fit."""
    return os.environ.get("RNNLAB_RESIDENT", "1") != "0"


def grid_sync_allowed() -> bool:
    """A switch for debugging: RNNLAB_GRID_SYNC=0 launches the split path step by step instead."""
    return not interpreted() and os.environ.get("RNNLAB_GRID_SYNC", "1") != "0"


def plan(
    gates: int, hidden: int, batch: int, dtype: torch.dtype, device: torch.device, block_h: int = 0
) -> Plan:
    """The launch plan of a cell with ``gates`` gates of width ``hidden`` over ``batch`` rows.

    ``block_h`` > 0 forces square tiles of that size (a power of two >= 16; tests use it to run the tiled
    path at small H); the on-chip path is taken when one tile covers H.
    """
    padded = max(16, triton_next_power_of_2(hidden))
    if block_h and (block_h < 16 or block_h & (block_h - 1)):
        raise ValueError(f"block_h must be a power of two >= 16, got {block_h}")
    on_chip = block_h >= padded if block_h else gates * padded * padded <= ON_CHIP_ELEMENTS
    if on_chip:
        block_b, block_n, block_k, n_progs = BLOCK_B, padded, padded, 1
        b_tiles = -(-batch // block_b)
    else:
        widest = MAX_BLOCK_B[gates]
        block_b = BLOCK_B if block_h else min(widest, max(BLOCK_B, triton_next_power_of_2(batch)))
        b_tiles = -(-batch // block_b)
        per_tile = max(1, num_sms(device) // b_tiles)  # programs of one batch tile that fit beside the rest
        override = {} if block_h else _tile_override()  # tests' forced tiles win
        if block_h:
            block_n = block_k = block_h
        else:
            block_n = next((n for n in TILE_NS if -(-hidden // n) <= per_tile), TILE_NS[-1])
            block_n = override.pop("BLOCK_N", None) or block_n
            block_k = _streamed_tiles(block_b, dtype)["BLOCK_K"]
        n_progs = min(-(-hidden // block_n), per_tile)
    # Resident: each program owns exactly one column tile and its slice of W_hh (G x padded H x BLOCK_N)
    # fits beside the state, so the slice is loaded once per launch instead of re-read every step. The
    # whole previous state (BLOCK_B x padded H) is then read as one tile, which bounds it too.
    resident = (
        not on_chip
        and n_progs == -(-hidden // block_n)
        and gates * padded * block_n <= RESIDENT_ELEMENTS
        and block_b * padded <= RESIDENT_STATE
        and resident_allowed()
    )
    if resident:
        block_k = padded
    meta = dict(
        ON_CHIP=on_chip,
        RESIDENT=resident,
        BLOCK_B=block_b,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        PRECISION=dot_precision(dtype),
        UPCAST=interpreted() and dtype == torch.bfloat16,  # see kernels/device.py: dot
    )
    if on_chip or resident:
        meta["num_warps"] = 8 if gates * block_n * block_k > 8192 else 4
    else:
        meta.update({**_streamed_tiles(block_b, dtype), "BLOCK_K": block_k, **override})
    return Plan((b_tiles, n_progs), meta, sync=n_progs > 1 and grid_sync_allowed())


def _streamed_tiles(block_b: int, dtype: torch.dtype) -> dict:
    """BLOCK_K, warps and pipeline depth of the streamed split path, as measured on an H100
    (experiments/kernels/README.md, "tuning"): bf16/fp16 read W_hh in 64-deep tiles, 4 loads ahead; fp32
    (TF32) keeps the shallower tiles it was measured with (16-row tiles: 4 warps, 3 stages; larger: 8, 2)."""
    if dtype != torch.float32:
        return dict(BLOCK_K=64, num_warps=4, num_stages=4)
    warps, stages = (4, 3) if block_b == BLOCK_B else (8, 2)
    return dict(BLOCK_K=32, num_warps=warps, num_stages=stages)


def _tile_override() -> dict:
    """RNNLAB_TILE="BLOCK_N,BLOCK_K,num_warps,num_stages" replaces the tiled path's choice (BLOCK_N 0: keep
    the automatic one): a knob for tuning runs (see experiments/kernels/README.md), not for normal use."""
    spec = os.environ.get("RNNLAB_TILE")
    if not spec:
        return {}
    try:
        block_n, block_k, warps, stages = (int(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(
            f"RNNLAB_TILE must be 'BLOCK_N,BLOCK_K,num_warps,num_stages' integers, got {spec!r}"
        ) from None
    return dict(BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps, num_stages=stages)


def launch(kernel, plan: Plan, steps: int, args: tuple, phased: bool = False, **constexprs) -> None:
    """Run ``kernel[grid](*args, counter, S0, STEPS, **constexprs, **meta)`` over all ``steps``.

    ``phased`` (the backward kernels): a step has two phases with a barrier between them, so a step-by-step
    launch runs PHASE1 and PHASE2 as two launches."""
    grid, meta = plan.grid, plan.meta
    phases = dict(PHASE1=True, PHASE2=True) if phased else {}
    if plan.one_launch:
        device = args[0].device
        counter = torch.zeros(grid[0], dtype=torch.int32, device=device) if plan.sync else None
        kernel[grid](*args, counter, 0, steps, SYNC=plan.sync, **phases, **constexprs, **meta)
        return
    for s in range(steps):
        if phased:
            kernel[grid](*args, None, s, 1, SYNC=False, PHASE1=True, PHASE2=False, **constexprs, **meta)
            kernel[grid](*args, None, s, 1, SYNC=False, PHASE1=False, PHASE2=True, **constexprs, **meta)
        else:
            kernel[grid](*args, None, s, 1, SYNC=False, **constexprs, **meta)


def triton_next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def dot_precision(dtype: torch.dtype) -> str:
    """``input_precision`` for tl.dot on fp32 operands: the precision contract of torch.nn's GPU RNNs.

    ``torch.backends.cudnn.allow_tf32`` (True by default) lets cuDNN run fp32 RNNs on TF32 tensor cores;
    the fused kernels follow the same switch: "tf32" when it is on, "tf32x3" when it is off (each product
    as three TF32 products, hi*hi + hi*lo + lo*hi: about fp32's own accuracy, still on tensor cores). The
    state and accumulation are fp32 either way. bf16/fp16 operands ignore it. (The interpreter computes
    dots exactly.)"""
    if dtype != torch.float32:
        return "ieee"
    return "tf32" if torch.backends.cudnn.allow_tf32 else "tf32x3"


def device_guard(tensor: torch.Tensor):
    """Launch on the tensor's CUDA device (not the current one); nothing to do elsewhere."""
    if tensor.device.type == "cuda":
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def new_buffer(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An output or scratch buffer the kernel fills: uninitialised, or NaN under the POISON test hook."""
    if POISON:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def lengths_arg(lengths: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """(B,) int32 on the kernel's device, or None."""
    if lengths is None:
        return None
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    return lengths.to(device=device, dtype=torch.int32).contiguous()


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def recurrent_weight_grad(
    d_gates: torch.Tensor, out: torch.Tensor, h0: torch.Tensor, lengths: torch.Tensor | None, reverse: bool
) -> torch.Tensor:
    """dW_hh = sum_t dG_t^T h_entering(t): (G*H, H), two deterministic GEMMs, without materialising the
    (T, B, H) entering states.

    A row's valid steps are a prefix t < length and dG is zero on the others, so the state entering a valid
    step is the output of the step processed just before (t - 1 forward, t + 1 reverse), except at the
    row's first processed step (t = 0 forward, t = length - 1 reverse), which starts from h0. ``out`` is
    zero past each length, so the neighbour term adds nothing at that first step."""
    steps, batch, hidden = out.shape
    gh = d_gates.shape[-1]
    if steps == 0:  # no step: the weight had no effect
        return h0.new_zeros(gh, hidden)
    if reverse:
        shifted = d_gates[:-1].reshape(-1, gh).t() @ out[1:].reshape(-1, hidden)  # dG_t^T out_{t+1}
        if lengths is None:
            first = d_gates[steps - 1]  # (B, G*H)
        else:
            last = (lengths.long() - 1).clamp_min(0)  # rows of length 0 have dG = 0 everywhere
            first = d_gates[last, torch.arange(batch, device=out.device)]
    else:
        shifted = d_gates[1:].reshape(-1, gh).t() @ out[:-1].reshape(-1, hidden)  # dG_t^T out_{t-1}
        first = d_gates[0]
    return shifted + first.t() @ h0


def zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def check_inputs(gx: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor, gates: int) -> int:
    """Shape/dtype checks shared by the cells; returns H."""
    if gx.dim() != 3 or gx.shape[-1] % gates:
        raise ValueError(f"gx must be (T, B, {gates}*H), got {tuple(gx.shape)}")
    hidden = gx.shape[-1] // gates
    if tuple(w_hh.shape) != (gates * hidden, hidden):
        raise ValueError(f"w_hh must be ({gates * hidden}, {hidden}), got {tuple(w_hh.shape)}")
    if tuple(h0.shape) != (gx.shape[1], hidden):
        raise ValueError(f"initial state must be ({gx.shape[1]}, {hidden}), got {tuple(h0.shape)}")
    if gx.dtype not in DTYPES or w_hh.dtype != gx.dtype or h0.dtype != gx.dtype:
        raise TypeError(f"gx, w_hh and states must share one dtype of {DTYPES}")
    return hidden
