"""Triton device functions shared by the cells: activations, weight tiles, and the validity of a step."""

import triton
import triton.language as tl


@triton.jit
def sigmoid(x):
    # exp(-x) overflows to inf for x < -88: 1 / inf = 0, the right limit, no NaN.
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def tanh(x):
    # 2 sigmoid(2x) - 1: saturates to +-1 without the inf/inf NaN of (e^x - e^-x) / (e^x + e^-x).
    # Absolute error ~1e-7 in fp32 near 0 (cancellation), well inside the fp32 test tolerance.
    return 2.0 * sigmoid(2.0 * x) - 1.0


@triton.jit
def activate(x, ACT: tl.constexpr):
    """ACT: 0 tanh, 1 relu, 2 sigmoid (the Elman RNN's nonlinearity)."""
    if ACT == 0:
        y = tanh(x)
    elif ACT == 1:
        y = tl.maximum(x, 0.0)
    else:
        y = sigmoid(x)
    return y


@triton.jit
def activation_slope(y, ACT: tl.constexpr):
    """Derivative of the nonlinearity read off its output y."""
    if ACT == 0:
        d = 1.0 - y * y
    elif ACT == 1:
        d = (y > 0.0).to(tl.float32)
    else:
        d = y * (1.0 - y)
    return d


@triton.jit
def step_validity(lengths, rows, row_mask, t, HAS_LENGTHS: tl.constexpr):
    """(BLOCK_B, 1) bool: rows whose length covers time t (every real row without lengths)."""
    if HAS_LENGTHS:
        length = tl.load(lengths + rows, mask=row_mask, other=0)
        valid = (t < length) & row_mask
    else:
        valid = row_mask
    return valid[:, None]


@triton.jit
def state_tile(rows, row_mask, cols, H):
    """Offsets and mask of the (BLOCK_B, len(cols)) tile rows x cols of a row-major (B, H) state buffer
    (masked past B and past H)."""
    mask = row_mask[:, None] & (cols < H)[None, :]
    return rows[:, None] * H + cols[None, :], mask


@triton.jit
def time_index(s, T, REVERSE: tl.constexpr):
    """Time t of processing step s: s, or T-1-s for a reverse direction."""
    if REVERSE:
        t = T - 1 - s
    else:
        t = s
    return t


@triton.jit
def load_wt_tile(w, H, gate, offs_k, offs_n):
    """(BLOCK_K, BLOCK_N) tile of gate ``gate``'s W^T: element [k, n] = w_hh[gate*H + n, k], zero-padded.

    The forward product h (B, K) @ W^T (K, N) reads W_hh transposed straight from its (G*H, H) layout."""
    mask = (offs_k < H)[:, None] & (offs_n < H)[None, :]
    return tl.load(w + (gate * H + offs_n[None, :]) * H + offs_k[:, None], mask=mask, other=0.0)


@triton.jit
def load_w_tile(w, H, gate, offs_k, offs_n):
    """(BLOCK_K, BLOCK_N) tile of gate ``gate``'s W: element [k, n] = w_hh[gate*H + k, n], zero-padded.

    The backward product dG (B, G*H) @ W_hh (G*H, H) reduces over the gate rows k."""
    mask = (offs_k < H)[:, None] & (offs_n < H)[None, :]
    return tl.load(w + (gate * H + offs_k[:, None]) * H + offs_n[None, :], mask=mask, other=0.0)


@triton.jit
def dot(a, b, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b with fp32 accumulation (acc may be None).

    UPCAST is set only under the interpreter for bf16: its tl.dot (triton 3.9) multiplies the raw bf16 bit
    patterns as integers. The operands are already bf16 values, so multiplying them in fp32 gives exactly
    the products a bf16 MMA with fp32 accumulation forms."""
    if UPCAST:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        out = tl.dot(a, b, acc, input_precision=PRECISION)
    return out


@triton.jit
def step_sync(counter, target, SYNC: tl.constexpr):
    """End of a step's writes: every thread of this program, and with SYNC every program of this batch tile
    (``counter`` holds one int32 arrival count per batch tile, zeroed before the launch; ``target`` = the
    arrivals expected so far), has stored its part of the state before anyone reads it.

    The increment is a release and the polling an acquire at GPU scope, so the stores before the barrier
    are visible to the loads after it (those read with .cg, from L2). Scalar atomics run on one thread per
    program. The launcher keeps the grid within the SM count, so every program waited for is resident."""
    tl.debug_barrier()
    if SYNC:
        arrivals = counter + tl.program_id(0)
        tl.atomic_add(arrivals, 1, sem="release", scope="gpu")
        seen = tl.atomic_add(arrivals, 0, sem="acquire", scope="gpu")
        while seen < target:
            seen = tl.atomic_add(arrivals, 0, sem="acquire", scope="gpu")
        tl.debug_barrier()


@triton.jit
def load_step(s, last, delta, PREFETCH: tl.constexpr):
    """The processing step whose inputs step s loads: s itself, or with PREFETCH the step after it
    (s + delta: +1 forward, -1 backward), staying at ``last`` (T - 1 or 0; that reload goes unused)."""
    if PREFETCH:
        s = tl.where(s == last, s, s + delta)
    return s


@triton.jit
def prefetched(carried, loaded, PREFETCH: tl.constexpr):
    """(this step's inputs, the inputs carried to the next step), given those the previous step loaded and
    those this step loaded (``load_step``). With PREFETCH a step's loads are issued one step early, so
    their latency (L2 or HBM) overlaps the previous step instead of waiting in the step's critical path."""
    if PREFETCH:
        pair = carried, loaded
    else:
        pair = loaded, loaded
    return pair
