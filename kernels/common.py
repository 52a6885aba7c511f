"""What the three fused recurrences share: availability, block sizes, activations, and small torch helpers.

Design in one paragraph (details in experiments/kernels/README.md). One program per tile of BLOCK_B = 16 batch
rows runs all T steps in one launch; the programs never talk to each other. When the recurrent weight fits on
chip (G * BH^2 <= ON_CHIP_ELEMENTS, BH = H padded to a power of two >= 16) it is loaded once, before the time
loop, and the state stays in registers ("on-chip" path). Otherwise the weight is re-read from global memory
(L2) every step in BLOCK_N x BLOCK_K tiles, and the state round-trips through a small fp32 scratch buffer with
a ``tl.debug_barrier()`` between one step's writes and the next step's reads ("tiled" path). The state is fp32
in both; the dot operands are in the input dtype, accumulated in fp32. Each cell module registers its
launchers as torch.library custom ops (``rnnlab::<cell>_fwd`` / ``_bwd``, with fake functions and autograd),
so torch.compile traces them with fullgraph=True.

This module does not import Triton at import time, so ``rnnlab.kernels.supports``/``available`` work anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

BLOCK_B = 16  # batch rows per program; tl.dot needs M >= 16, so smaller batches are padded (masked)
ON_CHIP_ELEMENTS = 16384  # G * BH^2 bound for keeping W_hh on chip: LSTM to H=64, GRU to 64, RNN to 128
TILE_N, TILE_K = 64, 32  # tiles of the tiled path: output columns x reduction
MAX_HIDDEN = 16384  # int32 offsets into W_hh (G*H*H) stay below 2^31 up to here
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


def choose_blocks(gates: int, hidden: int, block_h: int = 0) -> tuple[int, int, bool]:
    """(BLOCK_N, BLOCK_K, on_chip) for a cell with ``gates`` gates of width ``hidden``.

    ``block_h`` > 0 forces square tiles of that size (a power of two >= 16; tests use it to run the tiled
    path at small H); the on-chip path is taken when one tile covers H.
    """
    padded = max(16, triton_next_power_of_2(hidden))
    if block_h:
        if block_h < 16 or block_h & (block_h - 1):
            raise ValueError(f"block_h must be a power of two >= 16, got {block_h}")
        return (padded, padded, True) if block_h >= padded else (block_h, block_h, False)
    if gates * padded * padded <= ON_CHIP_ELEMENTS:
        return padded, padded, True
    return TILE_N, TILE_K, False


def num_warps_for(gates: int, block_n: int, block_k: int, on_chip: bool) -> int:
    """4 warps, 8 once the on-chip weight passes 8K elements (keeps it near 64 registers a thread)."""
    return 8 if on_chip and gates * block_n * block_k > 8192 else 4


def launch_config(gates: int, hidden: int, batch: int, dtype: torch.dtype, block_h: int = 0):
    """(grid, meta-parameters) of a cell's forward and backward launches: one program per BLOCK_B rows."""
    block_n, block_k, on_chip = choose_blocks(gates, hidden, block_h)
    grid = ((batch + BLOCK_B - 1) // BLOCK_B,)
    meta = dict(
        ON_CHIP=on_chip,
        BLOCK_B=BLOCK_B,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        PRECISION=dot_precision(dtype),
        UPCAST=interpreted() and dtype == torch.bfloat16,  # see kernels/device.py: dot
        num_warps=num_warps_for(gates, block_n, block_k, on_chip),
    )
    return grid, meta


def triton_next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def dot_precision(dtype: torch.dtype) -> str:
    """``input_precision`` for tl.dot. fp32 follows torch's own matmul switch: "ieee" (exact fp32, the
    default, matching the reference) unless ``torch.set_float32_matmul_precision("high")`` allows TF32,
    as it does for torch matmuls. bf16/fp16 operands ignore it. (The interpreter computes dots exactly.)"""
    if dtype == torch.float32 and torch.get_float32_matmul_precision() != "highest":
        return "tf32"
    return "ieee"


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


def entering_states(
    out: torch.Tensor, h0: torch.Tensor, lengths: torch.Tensor | None, reverse: bool
) -> torch.Tensor:
    """(T, B, H) hidden state entering each step (indexed by time t), rebuilt from ``out`` and ``h0``.

    Only its values at valid steps matter (the gate gradients are zero elsewhere). A valid step's entering
    state is the output of the step processed just before it when that step was valid, else h0 (the first
    processed step, or a reverse row's first valid step).
    """
    steps = out.shape[0]
    if steps == 0:
        return out.new_zeros(out.shape)
    first = h0.unsqueeze(0)  # (1, B, H)
    if reverse:
        shifted = torch.cat([out[1:], first], dim=0)  # out[t + 1]
    else:
        shifted = torch.cat([first, out[:-1]], dim=0)  # out[t - 1]
    if lengths is None:
        return shifted
    valid = torch.arange(steps, device=out.device)[:, None] < lengths[None, :].long()  # (T, B)
    never = valid.new_zeros(1, valid.shape[1])
    prev_valid = torch.cat([valid[1:], never], 0) if reverse else torch.cat([never, valid[:-1]], 0)
    return torch.where(prev_valid.unsqueeze(-1), shifted, first)


def recurrent_weight_grad(d_gates: torch.Tensor, h_prev: torch.Tensor) -> torch.Tensor:
    """dW = sum_t dG_t^T h_{t-1}: one (G*H, T*B) @ (T*B, H) GEMM, deterministic."""
    gh, hidden = d_gates.shape[-1], h_prev.shape[-1]
    return d_gates.reshape(-1, gh).t() @ h_prev.reshape(-1, hidden)


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
