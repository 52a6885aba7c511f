"""Triton device functions shared by the cells: activations, weight tiles, and the validity of a step."""

import triton
import triton.language as tl


@triton.jit
def sigmoid(x, FAST: tl.constexpr):
    """1 / (1 + e^-x) in fp32. FAST (``common.fast_math``: compiled for an NVIDIA GPU) takes e^-x and the
    reciprocal each as one approximate instruction (ex2.approx.ftz, rcp.approx.ftz: a few ulp, the class
    of tl.exp's and `/`'s own lowering, without their fix-ups for subnormal and huge values, which a
    sigmoid does not need): compiled for sm_90, a third fewer instructions in the LSTM forward's step."""
    if FAST:
        e = tl.inline_asm_elementwise(
            "ex2.approx.ftz.f32 $0, $1;", "=r,r", [x * -1.4426950408889634], tl.float32, True, 1
        )
        y = tl.inline_asm_elementwise("rcp.approx.ftz.f32 $0, $1;", "=r,r", [1.0 + e], tl.float32, True, 1)
    else:
        # exp(-x) overflows to inf for x < -88: 1 / inf = 0, the right limit, no NaN.
        y = 1.0 / (1.0 + tl.exp(-x))
    return y


@triton.jit
def tanh(x, FAST: tl.constexpr):
    # 2 sigmoid(2x) - 1: saturates to +-1 without the inf/inf NaN of (e^x - e^-x) / (e^x + e^-x).
    # Absolute error ~1e-7 in fp32 near 0 (cancellation), well inside the fp32 test tolerance.
    return 2.0 * sigmoid(2.0 * x, FAST) - 1.0


@triton.jit
def activate(x, ACT: tl.constexpr, FAST: tl.constexpr):
    """ACT: 0 tanh, 1 relu, 2 sigmoid (the Elman RNN's nonlinearity)."""
    if ACT == 0:
        y = tanh(x, FAST)
    elif ACT == 1:
        y = tl.maximum(x, 0.0)
    else:
        y = sigmoid(x, FAST)
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
    """Time t of processing step s: s, or T-1-s for a reverse direction. REVERSE == 2: both directions in
    one launch (``directed``), the grid's third axis picks this program's: 0 forward, 1 reverse."""
    if REVERSE == 2:
        t = s + tl.program_id(2) * (T - 1 - 2 * s)
    elif REVERSE:
        t = T - 1 - s
    else:
        t = s
    return t


@triton.jit
def both_directions_gradient(d_out, row, cols, H, mask):
    """Both directions in one launch: d_out[t] of one (BLOCK_B, BLOCK_N) tile (``row``: the (BLOCK_B, 1)
    indices t * B + b), as stored, from the layer's (T, B, 2, H) output gradient itself, read in place with
    rows of 2H (``directed`` moved ``d_out`` by H, to this direction's half of each row). (The cells read a
    one-direction (T, B, H) d_out with their own offsets, kept as they were: the same machine code.)"""
    return tl.load(d_out + row * 2 * H + cols[None, :], mask=mask, other=0.0)


@triton.jit
def directed(ptr, size):
    """Both directions in one launch: ``ptr``, a buffer stacked over the two directions (``size`` elements
    each), advanced to the direction of this program, the grid's third axis. (Not for a None argument: a
    jit function cannot return None once compiled, though the interpreter lets it.)"""
    return ptr + tl.program_id(2).to(tl.int64) * size


@triton.jit
def load_wt_tile(w, H, gate, offs_k, offs_n):
    """(BLOCK_K, BLOCK_N) tile of gate ``gate``'s W^T: element [k, n] = w_hh[gate*H + n, k], zero-padded.

    The forward product h (B, K) @ W^T (K, N) reads W_hh transposed straight from its (G*H, H) layout."""
    mask = (offs_k < H)[:, None] & (offs_n < H)[None, :]
    return tl.load(w + (gate * H + offs_n[None, :]) * H + offs_k[:, None], mask=mask, other=0.0)


@triton.jit
def load_w_tile(w, H, gate, offs_k, offs_n, G: tl.constexpr, W_T: tl.constexpr):
    """(BLOCK_K, BLOCK_N) tile of gate ``gate``'s W: element [k, n] = w_hh[gate*H + k, n], zero-padded.

    The backward product dG (B, G*H) @ W_hh (G*H, H) reduces over the gate rows k. ``w`` is W_hh (G*H, H)
    itself, or with W_T its transpose (H, G*H), k contiguous (``common.backward_weight``: fp32, whose
    tensor-core products read their operand from shared memory with ldmatrix only along k)."""
    mask = (offs_k < H)[:, None] & (offs_n < H)[None, :]
    if W_T:
        tile = tl.load(w + offs_n[None, :] * (G * H) + gate * H + offs_k[:, None], mask=mask, other=0.0)
    else:
        tile = tl.load(w + (gate * H + offs_k[:, None]) * H + offs_n[None, :], mask=mask, other=0.0)
    return tile


@triton.jit
def load_wt_gates(w, H, G: tl.constexpr, offs_k, n0, BLOCK_N: tl.constexpr):
    """(BLOCK_K, 4 * BLOCK_N): the W^T tiles of columns n0 .. n0 + BLOCK_N of gates 0..3 side by side,
    element [k, j * BLOCK_N + n] = w_hh[j*H + n0 + n, k], zero past H and for gates j >= G (GRU's three).

    One product h @ this tile gives every gate's pre-activation at once (``split_gates``), and its
    4 * BLOCK_N output columns are dealt across the warps. Four BLOCK_N-wide products, one per gate, are
    too narrow to split: at 16 columns every warp would issue all of them (FUSED in kernels/launch.py)."""
    n4 = tl.arange(0, 4 * BLOCK_N)
    gate = n4 // BLOCK_N
    cols = n0 + n4 % BLOCK_N
    mask = (offs_k < H)[:, None] & ((cols < H) & (gate < G))[None, :]
    return tl.load(w + (gate * H + cols)[None, :] * H + offs_k[:, None], mask=mask, other=0.0)


@triton.jit
def split_gates(acc, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """The four (BLOCK_B, BLOCK_N) gate blocks of acc (BLOCK_B, 4 * BLOCK_N), gate 0 first."""
    acc = tl.reshape(acc, (BLOCK_B, 4, BLOCK_N))  # [b, j, n]
    acc = tl.reshape(tl.permute(acc, (0, 2, 1)), (BLOCK_B, BLOCK_N, 2, 2))  # [b, n, j // 2, j % 2]
    even, odd = tl.split(acc)  # gates 0, 2 and gates 1, 3
    g0, g2 = tl.split(even)
    g1, g3 = tl.split(odd)
    return g0, g1, g2, g3


@triton.jit
def load_w_gates(w, H, G: tl.constexpr, offs_k, offs_n, W_T: tl.constexpr):
    """(4, BLOCK_K, BLOCK_N): gate j's W tile [k, n] = w_hh[j*H + k, n], zero past H and for j >= G
    (``w`` as ``load_w_tile`` reads it).

    The backward's product dG (B, G*H) @ W_hh (G*H, H) as one batched product over the gates
    (``gate_product``), each gate's share on its own warps, instead of G products that every warp of a
    narrow tile would issue in full."""
    gate = tl.arange(0, 4)[:, None, None]
    mask = (gate < G) & (offs_k < H)[None, :, None] & (offs_n < H)[None, None, :]
    if W_T:
        ptrs = w + offs_n[None, None, :] * (G * H) + gate * H + offs_k[None, :, None]
    else:
        ptrs = w + (gate * H + offs_k[None, :, None]) * H + offs_n[None, None, :]
    return tl.load(ptrs, mask=mask, other=0.0)


@triton.jit
def load_gate_rows(d_gates, g_off, H, G: tl.constexpr, k_mask):
    """(4, BLOCK_B, BLOCK_K): gate j's gradient tile read at ``d_gates + g_off + j*H`` (from L2: other
    programs wrote it), zero for j >= G; the left operand of ``gate_product``."""
    gate = tl.arange(0, 4)[:, None, None]
    mask = (gate < G) & k_mask[None, :, :]
    return tl.load(d_gates + g_off[None, :, :] + gate * H, mask=mask, other=0.0, cache_modifier=".cg")


@triton.jit
def gate_product(dg3, w3, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + the sum over the gates j of dG_j @ W_j: dg3 (4, BLOCK_B, BLOCK_K), w3 (4, BLOCK_K, BLOCK_N)."""
    return acc + tl.sum(dot(dg3, w3, None, PRECISION, UPCAST), axis=0)


@triton.jit
def dot(a, b, acc, PRECISION: tl.constexpr, UPCAST: tl.constexpr):
    """acc + a @ b with fp32 accumulation (acc may be None).

    UPCAST is set only under the interpreter for bf16: its tl.dot (triton 3.9) multiplies the raw bf16 bit
    patterns as integers. The operands are already bf16 values, so multiplying them in fp32 gives exactly
    the products a bf16 MMA with fp32 accumulation forms."""
    if UPCAST:
        out = _dot(a.to(tl.float32), b.to(tl.float32), acc, "ieee")
    else:
        out = _dot(a, b, acc, PRECISION)
    return out


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr):
    # No accumulator: left out, not passed on as None, which Triton 3.3 (torch 2.7's) fails to compile
    if acc is None:
        out = tl.dot(a, b, input_precision=PRECISION)
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
def read_state(h_buf, xch, s, size, off, mask, TAGGED: tl.constexpr):
    """The whole state h_s (fp32) at the given offsets of the split path's (2, B, H) scratch (``size`` = B * H
    elements a slot), as step s reads it: slot s % 2 of ``h_buf`` after the step's barrier, or with TAGGED
    the words of slot s % 2 of ``xch`` once each carries step s's tag (``tagged_store``; the first step
    reads h0 from ``h_buf``, which the host wrote before the launch)."""
    if TAGGED:
        if s == 0:
            h = tl.load(h_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
        else:
            h = tagged_load(xch + (s % 2) * size, off, mask, s)
    else:
        h = tl.load(h_buf + (s % 2) * size + off, mask=mask, other=0.0, cache_modifier=".cg")
    return h


@triton.jit
def write_state(h_buf, xch, counter, s, size, off, mask, h, SYNC: tl.constexpr, TAGGED: tl.constexpr):
    """End of step s on the split path: this program's tile of h_{s+1} into slot (s + 1) % 2 of ``h_buf``
    (the final state, and what a step-by-step launch starts from), then the barrier (``step_sync``), or
    with TAGGED the same values tagged s + 1 into ``xch`` and no barrier: readers wait on the words
    themselves (``read_state``)."""
    slot = ((s + 1) % 2) * size
    tl.store(h_buf + slot + off, h, mask=mask)
    if TAGGED:
        tagged_store(xch + slot, off, mask, h, s + 1)
    else:
        step_sync(counter, (s + 1) * tl.num_programs(1), SYNC)


@triton.jit
def post_gradient(xch, r, size, off, mask, grad, dtype):
    """Backward, tagged exchange: this tile of one gate's gradient at processing step r, rounded to
    ``dtype`` as its plain copy is stored, into slot r % 2 of ``xch`` (``size`` elements a slot), tagged
    r + 1 (``tagged_gradient`` and ``tagged_gradient_pair`` read it)."""
    tagged_store(xch + (r % 2) * size, off, mask, grad.to(dtype).to(tl.float32), r + 1)


@triton.jit
def tagged_gradient(xch, r, size, off, mask, dtype):
    """Backward, tagged exchange: a tile of the gate gradients every program posted at processing step r
    (``post_gradient``), from slot r % 2 of ``xch`` once its words carry r + 1, in ``dtype``."""
    return tagged_load(xch + (r % 2) * size, off, mask, r + 1).to(dtype)


@triton.jit
def tagged_gradient_pair(xch, r, size, off, other, mask, dtype):
    """``tagged_gradient`` for two tiles at once (``off`` and ``other``): loaded, and reloaded, together
    until every word of both carries r + 1, so that their round trips through L2 overlap. (All of a cell's
    gate tiles at once would hold four int64 tiles: compiled for sm_90, LSTM's fp32 16-column backward
    then spilled.)"""
    words, tag = xch + (r % 2) * size, r + 1
    a = tl.load(words + off, mask=mask, other=0, volatile=True)
    b = tl.load(words + other, mask=mask, other=0, volatile=True)
    while tl.min(tl.where(mask, tl.minimum((a >> 32).to(tl.int32), (b >> 32).to(tl.int32)), tag)) < tag:
        a = tl.load(words + off, mask=mask, other=0, volatile=True)
        b = tl.load(words + other, mask=mask, other=0, volatile=True)
    return _value(a).to(dtype), _value(b).to(dtype)


@triton.jit
def _value(word):
    return word.to(tl.int32).to(tl.float32, bitcast=True)  # the low 32 bits


@triton.jit
def tagged_store(words, off, mask, value, tag):
    """Store fp32 ``value`` with ``tag`` in one int64 word per element (tag in the high 32 bits, the value's
    bits in the low), each word written whole (a relaxed atomic exchange, its old value unused): a reader
    that finds the tag it waits for has the value of that step, with no fence or counter between writer
    and reader. (Relaxed, not a plain store, so that the polling volatile loads, relaxed themselves, do
    not race with it in the PTX memory model.)"""
    bits = value.to(tl.uint32, bitcast=True).to(tl.int64)  # zero-extended
    tl.atomic_xchg(words + off, bits | (tl.cast(tag, tl.int64) << 32), mask=mask, sem="relaxed", scope="gpu")


@triton.jit
def tagged_load(words, off, mask, tag):
    """The fp32 values of ``tagged_store``'s words at ``off``, polled (volatile loads, from L2) until every
    word in ``mask`` carries ``tag``. A slot of two holds the awaited step's words or those of two steps
    before, never a later step's: the next writer of the slot first waits for this program's words of the
    step in between, which this program stores after this poll has ended (the loop's exit needs every
    word of the tile, and those words feed the values it stores). That ordering of a load before a later
    store rests on the GPU not making a store visible before the loads it waits for, not on a fence:
    what the barrier's release and acquire pay for. The GPU test
    test_grid_barrier_matches_step_by_step_launches checks the result, run after run."""
    word = tl.load(words + off, mask=mask, other=0, volatile=True)
    while tl.min(tl.where(mask, (word >> 32).to(tl.int32), tag)) < tag:
        word = tl.load(words + off, mask=mask, other=0, volatile=True)
    return _value(word)


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
