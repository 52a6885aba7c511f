"""Fused Elman RNN recurrence: h_t = act(gx_t + h_{t-1} @ W_hh.T), act one of tanh, relu, sigmoid.

Same math and conventions as ``rnnlab.reference.rnn``. The activation's derivative is read off its output,
so nothing but ``out`` (returned anyway) is saved for backward. The backward kernel produces the
pre-activation gradients (T, B, H) (= d gx) and dh0; dW_hh is one GEMM afterwards.
Paths (on chip, split resident, split streamed) and launches: see ``kernels/launch.py``.
"""

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import common, launch
from .device import (
    activate,
    activation_slope,
    both_directions_gradient,
    directed,
    dot,
    load_step,
    load_w_tile,
    load_wt_tile,
    post_gradient,
    prefetched,
    read_state,
    state_tile,
    step_sync,
    step_validity,
    tagged_gradient,
    time_index,
    write_state,
)


@triton.jit
def _rnn_gx(gx, t, B, H, rows, cols):
    """gx[t] of one (BLOCK_B, BLOCK_N) tile, in gx's dtype (zero past B, H)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    return tl.load(gx + (t.to(tl.int64) * B + rows[:, None]) * H + cols[None, :], mask=mask, other=0.0)


@triton.jit
def _rnn_fwd_cell(x, out, t, B, H, rows, cols, acc, h_prev, valid, ACT: tl.constexpr, FAST: tl.constexpr):
    """One (BLOCK_B, BLOCK_N) tile at time t given its gx[t] tile ``x`` and h_{t-1} @ W^T; stores out[t],
    returns the fp32 h."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    off = (t.to(tl.int64) * B + rows[:, None]) * H + cols[None, :]
    h = activate(acc + x.to(tl.float32), ACT, FAST)
    h = tl.where(valid, h, h_prev)
    tl.store(out + off, tl.where(valid, h, 0.0).to(out.dtype.element_ty), mask=mask)
    return h


@triton.jit(do_not_specialize=["T", "S0", "STEPS"])
def _rnn_fwd_kernel(
    gx, w, lengths, out, h_buf, T, B, H, counter, xch, S0, STEPS,
    SYNC: tl.constexpr, TAGGED: tl.constexpr,
    ACT: tl.constexpr, HAS_LENGTHS: tl.constexpr, REVERSE: tl.constexpr, ON_CHIP: tl.constexpr,
    RESIDENT: tl.constexpr, PREFETCH: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    FAST: tl.constexpr,  # device.sigmoid: common.fast_math
):  # fmt: skip
    # h_buf (2, B, H) fp32: h0 in slot 0; step s reads slot s % 2 and writes the other (tiled path); the
    # final h lands in slot T % 2. PREFETCH (on chip, resident): step s + 1's gx is loaded while step s
    # computes.
    if REVERSE == 2:  # both directions in one launch: this program's direction of each stacked buffer
        seq = T.to(tl.int64) * B * H
        gx, out, w, h_buf = (
            directed(gx, seq),
            directed(out, seq),
            directed(w, H * H),
            directed(h_buf, 2 * B * H),
        )
        if SYNC:  # (None otherwise, as xch is without TAGGED)
            counter = directed(counter, tl.num_programs(0))
        if TAGGED:
            xch = directed(xch, 2 * B * H)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    dt = w.dtype.element_ty
    if ON_CHIP:
        cols = tl.arange(0, BLOCK_N)
        off, mask = state_tile(rows, row_mask, cols, H)
        w_t = load_wt_tile(w, H, 0, cols, cols)
        h = tl.load(h_buf + off, mask=mask, other=0.0)
        x_next = _rnn_gx(gx, time_index(0, T, REVERSE), B, H, rows, cols)  # step 0's
        for s in range(T):
            t = time_index(s, T, REVERSE)
            t_load = time_index(load_step(s, T - 1, 1, PREFETCH), T, REVERSE)
            x, x_next = prefetched(x_next, _rnn_gx(gx, t_load, B, H, rows, cols), PREFETCH)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            acc = dot(h.to(dt), w_t, None, PRECISION, UPCAST)
            h = _rnn_fwd_cell(x, out, t, B, H, rows, cols, acc, h, valid, ACT, FAST)
        tl.store(h_buf + (T % 2) * B * H + off, h, mask=mask)
    elif RESIDENT:
        # One column tile per program, its (padded H, BLOCK_N) slice of W^T loaded once; this tile's h in
        # registers for the launch, the whole h_{t-1} read from L2 each step.
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        off, mask = state_tile(rows, row_mask, cols, H)
        k_off, k_mask = state_tile(rows, row_mask, ks, H)
        w_t = load_wt_tile(w, H, 0, ks, cols)
        h = tl.load(h_buf + (S0 % 2) * B * H + off, mask=mask, other=0.0, cache_modifier=".cg")
        x_next = _rnn_gx(gx, time_index(S0, T, REVERSE), B, H, rows, cols)  # step S0's
        for s in range(S0, S0 + STEPS):
            t = time_index(s, T, REVERSE)
            t_load = time_index(load_step(s, T - 1, 1, PREFETCH), T, REVERSE)  # issued before the barrier
            x, x_next = prefetched(x_next, _rnn_gx(gx, t_load, B, H, rows, cols), PREFETCH)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            hk = read_state(h_buf, xch, s, B * H, k_off, k_mask, TAGGED)
            acc = dot(hk.to(dt), w_t, None, PRECISION, UPCAST)
            h = _rnn_fwd_cell(x, out, t, B, H, rows, cols, acc, h, valid, ACT, FAST)
            write_state(h_buf, xch, counter, s, B * H, off, mask, h, SYNC, TAGGED)  # before step s + 1 reads
    else:
        # This program's column tiles (see launch.Plan); h_{t-1} read from L2 (.cg).
        offs_n = tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        n_first, n_step = tl.program_id(1) * BLOCK_N, tl.num_programs(1) * BLOCK_N
        for s in range(S0, S0 + STEPS):
            t = time_index(s, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            h_read = h_buf + (s % 2) * B * H
            h_write = h_buf + ((s + 1) % 2) * B * H
            for n0 in range(n_first, H, n_step):
                cols = n0 + offs_n
                acc = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                for k0 in range(0, H, BLOCK_K):
                    ks = k0 + offs_k
                    k_mask = state_tile(rows, row_mask, ks, H)[1]
                    hk = tl.load(
                        h_read + rows[:, None] * H + ks[None, :], mask=k_mask, other=0.0, cache_modifier=".cg"
                    )
                    acc = dot(hk.to(dt), load_wt_tile(w, H, 0, ks, cols), acc, PRECISION, UPCAST)
                off, mask = state_tile(rows, row_mask, cols, H)
                h_prev = tl.load(h_read + off, mask=mask, other=0.0, cache_modifier=".cg")
                x = _rnn_gx(gx, t, B, H, rows, cols)
                h = _rnn_fwd_cell(x, out, t, B, H, rows, cols, acc, h_prev, valid, ACT, FAST)
                tl.store(h_write + off, h, mask=mask)
            step_sync(counter, (s + 1) * tl.num_programs(1), SYNC)  # h_t complete before step s + 1 reads it


@triton.jit
def _rnn_bwd_load(out, d_out, t, B, H, rows, cols, REVERSE: tl.constexpr):
    """What time t's gradient needs, in the stored dtype: d_out[t] (zeros when ``d_out`` is None) and
    out[t] (= h_t on a valid step)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    off = (t.to(tl.int64) * B + rows[:, None]) * H + cols[None, :]
    dy = tl.zeros(mask.shape, tl.float32)  # a constant the compiler folds away (also where carried)
    if d_out is not None:  # None (a compile-time constant) when only the final state took a gradient
        if REVERSE == 2:
            dy = both_directions_gradient(d_out, t.to(tl.int64) * B + rows[:, None], cols, H, mask)
        else:
            dy = tl.load(d_out + off, mask=mask, other=0.0)
    return dy, tl.load(out + off, mask=mask, other=0.0)


@triton.jit
def _rnn_bwd_cell(loaded, d_out, d_pre, t, B, H, rows, cols, dh, valid, ACT: tl.constexpr):
    """Pre-activation gradient of one tile at time t from ``loaded`` (``_rnn_bwd_load``) and dh carried in
    from step t+1 (without d_out[t]). Stores it; returns it (fp32) and the part of dh_{t-1} that bypasses W
    (all of dh on a frozen step)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    off = (t.to(tl.int64) * B + rows[:, None]) * H + cols[None, :]
    dy, h = loaded
    if d_out is not None:
        dh = dh + tl.where(valid, dy.to(tl.float32), 0.0)
    d = tl.where(valid, dh * activation_slope(h.to(tl.float32), ACT), 0.0)
    tl.store(d_pre + off, d.to(d_pre.dtype.element_ty), mask=mask)
    return d, tl.where(valid, 0.0, dh)


@triton.jit(do_not_specialize=["T", "S0", "STEPS"])
def _rnn_bwd_kernel(
    w, out, lengths, d_out, d_pre, dh_buf, T, B, H, counter, xch, S0, STEPS,
    SYNC: tl.constexpr, TAGGED: tl.constexpr, PHASE1: tl.constexpr, PHASE2: tl.constexpr,
    ACT: tl.constexpr, HAS_LENGTHS: tl.constexpr, REVERSE: tl.constexpr, ON_CHIP: tl.constexpr,
    RESIDENT: tl.constexpr, PREFETCH: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    W_T: tl.constexpr,  # w is W_hh^T (H, G*H): common.backward_weight
):  # fmt: skip
    # dh_buf (B, H) fp32: d h_n in, dh0 out. Processing steps run s = T-1 .. 0. PREFETCH (resident
    # path): step s - 1's values are loaded while step s computes (on chip the compiler already
    # pipelines those loads, through shared memory).
    if REVERSE == 2:  # both directions in one launch: this program's direction of each stacked buffer
        seq = T.to(tl.int64) * B * H
        w, out, d_pre, dh_buf = (
            directed(w, H * H),
            directed(out, seq),
            directed(d_pre, seq),
            directed(dh_buf, B * H),
        )
        if d_out is not None:  # the layer's (T, B, 2, H) gradient: both_directions_gradient
            d_out = directed(d_out, H)
        if SYNC:  # (None otherwise, as xch is without TAGGED)
            counter = directed(counter, tl.num_programs(0))
        if TAGGED:
            xch = directed(xch, 2 * B * H)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    dt = w.dtype.element_ty
    if ON_CHIP:
        cols = tl.arange(0, BLOCK_N)
        off, mask = state_tile(rows, row_mask, cols, H)
        w_tile = load_w_tile(w, H, 0, cols, cols, 1, W_T)
        dh = tl.load(dh_buf + off, mask=mask, other=0.0)
        for r in range(T):  # (its loads are pipelined by the compiler: no PREFETCH here)
            t = time_index(T - 1 - r, T, REVERSE)
            v = _rnn_bwd_load(out, d_out, t, B, H, rows, cols, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            d, dh = _rnn_bwd_cell(v, d_out, d_pre, t, B, H, rows, cols, dh, valid, ACT)
            dh = dot(d.to(dt), w_tile, dh, PRECISION, UPCAST)
        tl.store(dh_buf + off, dh, mask=mask)
    elif RESIDENT:
        # One column tile per program: its slice of W resident, this tile's dh in registers for the launch.
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        off, mask = state_tile(rows, row_mask, cols, H)
        k_mask = state_tile(rows, row_mask, ks, H)[1]
        w_tile = load_w_tile(w, H, 0, ks, cols, 1, W_T)
        dh = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
        v_next = _rnn_bwd_load(out, d_out, time_index(T - 1 - S0, T, REVERSE), B, H, rows, cols, REVERSE)
        for r in range(S0, S0 + STEPS):
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            if PHASE1:  # d_pre[t] of this tile to global memory; dh becomes the bypass of dh_{t-1}
                t_load = time_index(load_step(s, 0, -1, PREFETCH), T, REVERSE)  # in flight over the barrier
                v, v_next = prefetched(
                    v_next, _rnn_bwd_load(out, d_out, t_load, B, H, rows, cols, REVERSE), PREFETCH
                )
                d, dh = _rnn_bwd_cell(v, d_out, d_pre, t, B, H, rows, cols, dh, valid, ACT)
                if TAGGED:  # the same values to every program as tagged words
                    g_off = rows[:, None] * H + cols[None, :]
                    post_gradient(xch, r, B * H, g_off, mask, d, d_pre.dtype.element_ty)
            if not TAGGED:
                step_sync(counter, (r + 1) * tl.num_programs(1), SYNC)  # all of d_pre[t] written
            if PHASE2 and TAGGED:  # the same product, its operand from the tagged words
                x_off = rows[:, None] * H + ks[None, :]
                d = tagged_gradient(xch, r, B * H, x_off, k_mask, d_pre.dtype.element_ty)
                dh = dot(d, w_tile, dh, PRECISION, UPCAST)
            elif PHASE2:  # dh_{t-1} = bypass + d_pre[t] (B, H) @ W_hh (H, this tile)
                k_off = (t.to(tl.int64) * B + rows[:, None]) * H + ks[None, :]
                d = tl.load(d_pre + k_off, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(d, w_tile, dh, PRECISION, UPCAST)
        tl.store(dh_buf + off, dh, mask=mask)
    else:
        offs_n = tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        n_first, n_step = tl.program_id(1) * BLOCK_N, tl.num_programs(1) * BLOCK_N
        for r in range(S0, S0 + STEPS):
            t = time_index(T - 1 - r, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            if PHASE1:  # this program's columns: d_pre[t] to global memory; dh_buf keeps the bypass
                for n0 in range(n_first, H, n_step):
                    cols = n0 + offs_n
                    off, mask = state_tile(rows, row_mask, cols, H)
                    dh = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    v = _rnn_bwd_load(out, d_out, t, B, H, rows, cols, REVERSE)
                    _, dh_bypass = _rnn_bwd_cell(v, d_out, d_pre, t, B, H, rows, cols, dh, valid, ACT)
                    tl.store(dh_buf + off, dh_bypass, mask=mask)
            step_sync(counter, (r + 1) * tl.num_programs(1), SYNC)  # all of d_pre[t] written
            if PHASE2:  # dh_{t-1} = bypass + d_pre[t] (B, H) @ W_hh (H, H), this program's columns
                for n0 in range(n_first, H, n_step):
                    cols = n0 + offs_n
                    off, mask = state_tile(rows, row_mask, cols, H)
                    acc = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    for k0 in range(0, H, BLOCK_K):
                        ks = k0 + offs_k
                        k_mask = state_tile(rows, row_mask, ks, H)[1]
                        k_off = (t.to(tl.int64) * B + rows[:, None]) * H + ks[None, :]
                        d = tl.load(d_pre + k_off, mask=k_mask, other=0.0, cache_modifier=".cg")
                        acc = dot(d, load_w_tile(w, H, 0, ks, cols, 1, W_T), acc, PRECISION, UPCAST)
                    tl.store(dh_buf + off, acc, mask=mask)
                tl.debug_barrier()


_ACT = {name: code for code, name in enumerate(common.NONLINEARITIES)}  # tanh 0, relu 1, sigmoid 2


def _rnn_fwd_impl(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    lengths: Optional[Tensor],  # noqa: UP045  (torch.library's schema inference wants Optional)
    reverse: bool,
    nonlinearity: str,
    block_h: int,
) -> tuple[Tensor, Tensor]:
    """Returns out (T, B, H) and h_n (both directions stacked: (2, T, B, H) and (2, B, H))."""
    directions = common.stacked_directions(gx, reverse)
    steps, batch, hidden = gx.shape[-3:]
    gx, w_hh = gx.contiguous(), w_hh.contiguous()
    out = common.new_buffer(gx.shape, gx.dtype, gx.device)
    h_buf = common.fp32_state(h0, slots=2)  # ([2,] 2, B, H) fp32: h0, then the steps in turn
    if steps > 0 and batch > 0:
        plan = launch.plan(1, hidden, batch, gx.dtype, gx.device, block_h, directions=directions)
        with common.device_guard(gx):
            launch.run(
                _rnn_fwd_kernel, plan, steps, (gx, w_hh, lengths, out, h_buf, steps, batch, hidden),
                exchange=(batch, hidden), directions=directions, shared=(lengths,),
                ACT=_ACT[nonlinearity], HAS_LENGTHS=lengths is not None, REVERSE=reverse,
                FAST=common.fast_math(),
            )  # fmt: skip
    return out, common.in_dtype(h_buf[..., steps % 2, :, :], gx.dtype)


def _rnn_bwd_impl(
    d_out: Optional[Tensor],  # noqa: UP045  (None: the sequence output took no gradient)
    d_hn: Optional[Tensor],  # noqa: UP045  (None: the final state took none)
    w_hh: Tensor,
    out: Tensor,
    lengths: Optional[Tensor],  # noqa: UP045
    reverse: bool,
    nonlinearity: str,
    block_h: int,
) -> tuple[Tensor, Tensor]:
    """Returns the pre-activation gradients (T, B, H) (= d gx) and dh0 (both directions: stacked)."""
    directions = common.stacked_directions(out, reverse)
    steps, batch, hidden = out.shape[-3:]
    w_hh, w_t = common.backward_weight(w_hh)  # ([2,] H, G*H) in fp32: W_T
    d_pre = common.new_buffer(out.shape, out.dtype, out.device)
    dh_buf = common.fp32_gradient(d_hn, (*out.shape[:-3], batch, hidden), out.device)  # ([2,] B, H) fp32
    if steps > 0 and batch > 0:
        plan = launch.plan(1, hidden, batch, out.dtype, out.device, block_h, directions=directions)
        d_out = common.output_gradient_arg(d_out, plan)
        args = (w_hh, out.contiguous(), lengths, d_out, d_pre, dh_buf, steps, batch, hidden)
        with common.device_guard(out):
            launch.run(
                _rnn_bwd_kernel, plan, steps, args, phased=True, exchange=(batch, hidden),
                directions=directions, shared=(lengths,),
                ACT=_ACT[nonlinearity], HAS_LENGTHS=lengths is not None, REVERSE=reverse, W_T=w_t,
            )  # fmt: skip
    return d_pre, common.in_dtype(dh_buf, out.dtype)


# Registered with torch.library (what torch.compile traces); eager calls use the implementations directly
# through common.eager_autograd / common.op_or_impl.
_rnn_fwd = torch.library.custom_op("rnnlab::rnn_fwd", _rnn_fwd_impl, mutates_args=())
_rnn_bwd = torch.library.custom_op("rnnlab::rnn_bwd", _rnn_bwd_impl, mutates_args=())


@_rnn_fwd.register_fake
def _(gx, w_hh, h0, lengths, reverse, nonlinearity, block_h):
    return gx.new_empty(gx.shape), gx.new_empty(h0.shape)


@_rnn_bwd.register_fake
def _(d_out, d_hn, w_hh, out, lengths, reverse, nonlinearity, block_h):
    return out.new_empty(out.shape), out.new_empty((*out.shape[:-3], *out.shape[-2:]))


def _setup_context(ctx, inputs, output):
    gx, w_hh, h0, lengths, reverse, nonlinearity, block_h = inputs
    out, _ = output
    ctx.reverse, ctx.nonlinearity, ctx.block_h = reverse, nonlinearity, block_h
    ctx.save_for_backward(out, w_hh, h0, lengths)
    common.no_gradient_for(ctx)


def _backward(ctx, d_out, d_hn):
    out, w_hh, h0, lengths = ctx.saved_tensors
    bwd = common.op_or_impl(_rnn_bwd, _rnn_bwd_impl, w_hh)  # the custom op inside torch.compile
    d_gx, dh0 = bwd(d_out, d_hn, w_hh, out, lengths, ctx.reverse, ctx.nonlinearity, ctx.block_h)
    d_w_hh = common.recurrent_weight_grad(d_gx, out, h0, lengths, ctx.reverse)  # (H, H)
    return d_gx, d_w_hh, dh0, None, None, None, None


_rnn_fwd.register_autograd(_backward, setup_context=_setup_context)
_rnn_forward = common.eager_autograd(_rnn_fwd, _rnn_fwd_impl, _setup_context, _backward)


def rnn_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    lengths: Optional[Tensor] = None,  # noqa: UP045
    reverse: bool = False,
    nonlinearity: str = "tanh",
) -> tuple[Tensor, Tensor]:
    """Run an Elman RNN over precomputed input projections with the fused Triton kernels.

    gx: (T, B, H) = x @ W_ih.T + b_ih + b_hh, time-major; w_hh: (H, H); h0: (B, H); lengths: (B,)
    integers or None; reverse: walk t = T-1 .. 0; nonlinearity: "tanh", "relu" or "sigmoid".
    One dtype (fp32, bf16 or fp16); the state is carried in fp32.
    Returns out (T, B, H) (zero past each row's length) and h_n (B, H). Differentiable in gx, w_hh, h0.
    Same semantics as ``rnnlab.reference.rnn_recurrence``.

    Both directions of a bidirectional layer at once: gx (2, T, B, H), w_hh (2, H, H), h0 (2, B, H), reverse
    False; direction 1 runs in reverse, and out, h_n come back stacked likewise (one launch where
    ``launch.bidir_launch`` says so).

    Example::

        out, h_n = rnn_recurrence(x @ w_ih.T + b, w_hh, h0, nonlinearity="relu")
    """
    return _rnn(gx, w_hh, h0, lengths, reverse, nonlinearity)


def _rnn(gx, w_hh, h0, lengths=None, reverse=False, nonlinearity="tanh", block_h=0):
    """``rnn_recurrence`` with the tile size exposed (tests force the tiled path with block_h=16)."""
    if nonlinearity not in common.NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {common.NONLINEARITIES}, got {nonlinearity!r}")
    common.check_inputs(gx, w_hh, h0, 1)
    common.stacked_directions(gx, reverse)
    lengths = common.lengths_arg(lengths, gx.shape[-2], gx.device)
    return _rnn_forward(gx, w_hh, h0, lengths, reverse, nonlinearity, block_h)
