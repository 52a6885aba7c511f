"""Fused GRU recurrence with torch.nn/cuDNN semantics: the reset gate multiplies (W_hn h + b_hn).

Same math and conventions as ``rnnlab.reference.gru``:

    r, z = sigmoid(gx_{r,z} + h_{t-1} @ W_h{r,z}.T + b_h{r,z})
    n    = tanh(gx_n + r * (h_{t-1} @ W_hn.T + b_hn))
    h_t  = n + z * (h_{t-1} - n)

Saved for backward, in the input dtype: the gates r, z, n (T, B, 3H), written over gx when the caller allows
it (``overwrite_gx``: each is computed from the element of gx it replaces), gh_n = h_{t-1} @ W_hn.T + b_hn
(T, B, H), and ``out``. The backward kernel writes d gx = [d_r, d_z, d_n] (T, B, 3H), over the saved gates
when the graph is not kept (``common.gradient_buffer``), and the hidden-side n gradient d gh_n = d_n * r
(T, B, H) into a new buffer (the r, z parts are the same on both sides), and returns dh0; dW_hh and db_hh
are GEMMs/sums afterwards.
Paths (on chip, split resident, split streamed) and launches: see ``kernels/launch.py``.
"""

from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

from . import common, launch
from .device import (
    both_directions_gradient,
    directed,
    dot,
    gate_product,
    load_step,
    load_w_gates,
    load_w_tile,
    load_wt_gates,
    load_wt_tile,
    post_gradient,
    prefetched,
    read_state,
    sigmoid,
    split_gates,
    state_tile,
    step_sync,
    step_validity,
    tagged_gradient,
    tagged_gradient_pair,
    tanh,
    time_index,
    write_state,
)


@triton.jit
def _gru_gx(gx, t, B, H, rows, cols):
    """The input gates gx[t] (r, z, n) of one (BLOCK_B, BLOCK_N) tile, in gx's dtype (zero past B, H)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    x_off = (t.to(tl.int64) * B + rows[:, None]) * 3 * H + cols[None, :]
    x_r = tl.load(gx + x_off, mask=mask, other=0.0)
    x_z = tl.load(gx + x_off + H, mask=mask, other=0.0)
    x_n = tl.load(gx + x_off + 2 * H, mask=mask, other=0.0)
    return x_r, x_z, x_n


@triton.jit
def _gru_fwd_cell(
    x, b, out, gates, ghn, t, B, H, rows, cols, acc_r, acc_z, acc_n, h_prev, valid,
    HAS_BIAS: tl.constexpr, SAVE: tl.constexpr, FAST: tl.constexpr,
):  # fmt: skip
    """Gate math of one (BLOCK_B, BLOCK_N) tile at time t given its input gates ``x`` (``_gru_gx``) and
    h_{t-1} @ W^T per gate; stores out[t] (and r, z, n in ``gates``, gh_n in ``ghn`` when SAVE). Returns the
    new fp32 h, frozen where the step is not valid."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    row = t.to(tl.int64) * B + rows[:, None]  # (BLOCK_B, 1) index of (t, b)
    if HAS_BIAS:
        acc_r += tl.load(b + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]
        acc_z += tl.load(b + H + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]
        acc_n += tl.load(b + 2 * H + cols, mask=cols < H, other=0.0).to(tl.float32)[None, :]
    r = sigmoid(acc_r + x[0].to(tl.float32), FAST)
    z = sigmoid(acc_z + x[1].to(tl.float32), FAST)
    n = tanh(x[2].to(tl.float32) + r * acc_n, FAST)
    h = tl.where(valid, n + z * (h_prev - n), h_prev)
    tl.store(out + row * H + cols[None, :], tl.where(valid, h, 0.0).to(out.dtype.element_ty), mask=mask)
    if SAVE:  # ``gates`` may be gx itself: r, z, n are each computed from the x_r, x_z, x_n they replace
        dt = gates.dtype.element_ty
        g_off = row * 3 * H + cols[None, :]
        tl.store(gates + g_off, r.to(dt), mask=mask)
        tl.store(gates + g_off + H, z.to(dt), mask=mask)
        tl.store(gates + g_off + 2 * H, n.to(dt), mask=mask)
        tl.store(ghn + row * H + cols[None, :], acc_n.to(dt), mask=mask)
    return h


@triton.jit(do_not_specialize=["T", "S0", "STEPS"])
def _gru_fwd_kernel(
    gx, w, b, lengths, out, gates, ghn, h_buf, T, B, H, counter, xch, S0, STEPS,
    SYNC: tl.constexpr, TAGGED: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_LENGTHS: tl.constexpr, REVERSE: tl.constexpr, SAVE: tl.constexpr,
    ON_CHIP: tl.constexpr, RESIDENT: tl.constexpr, PREFETCH: tl.constexpr, BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr, FUSED: tl.constexpr,  # 0, 1 or 2: launch._fused
    FAST: tl.constexpr,  # device.sigmoid: common.fast_math
):  # fmt: skip
    # h_buf (2, B, H) fp32: h0 in slot 0; step s reads slot s % 2 and writes the other (tiled path); the
    # final h lands in slot T % 2. PREFETCH (on chip, resident): step s + 1's input gates are loaded while
    # step s computes.
    if REVERSE == 2:  # both directions in one launch: this program's direction of each stacked buffer
        seq = T.to(tl.int64) * B * H
        gx, out, w = directed(gx, 3 * seq), directed(out, seq), directed(w, 3 * H * H)
        h_buf = directed(h_buf, 2 * B * H)
        if HAS_BIAS:  # (None otherwise, as gates and ghn are without SAVE)
            b = directed(b, 3 * H)
        if SAVE:
            gates, ghn = directed(gates, 3 * seq), directed(ghn, seq)
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
        w_r = load_wt_tile(w, H, 0, cols, cols)
        w_z = load_wt_tile(w, H, 1, cols, cols)
        w_n = load_wt_tile(w, H, 2, cols, cols)
        h = tl.load(h_buf + off, mask=mask, other=0.0)
        x_next = _gru_gx(gx, time_index(0, T, REVERSE), B, H, rows, cols)  # step 0's input gates
        for s in range(T):
            t = time_index(s, T, REVERSE)
            t_load = time_index(load_step(s, T - 1, 1, PREFETCH), T, REVERSE)
            x, x_next = prefetched(x_next, _gru_gx(gx, t_load, B, H, rows, cols), PREFETCH)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            hd = h.to(dt)
            acc_r = dot(hd, w_r, None, PRECISION, UPCAST)
            acc_z = dot(hd, w_z, None, PRECISION, UPCAST)
            acc_n = dot(hd, w_n, None, PRECISION, UPCAST)
            h = _gru_fwd_cell(
                x, b, out, gates, ghn, t, B, H, rows, cols, acc_r, acc_z, acc_n, h, valid,
                HAS_BIAS, SAVE, FAST,
            )  # fmt: skip
        tl.store(h_buf + (T % 2) * B * H + off, h, mask=mask)
    elif RESIDENT:
        # One column tile per program, its (padded H, BLOCK_N) slice of W^T per gate loaded once; this tile's
        # h in registers for the launch, the whole h_{t-1} read from L2 each step.
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        off, mask = state_tile(rows, row_mask, cols, H)
        k_off, k_mask = state_tile(rows, row_mask, ks, H)
        if FUSED > 0:  # the three gates' slices side by side and a zero fourth: one product
            w4 = load_wt_gates(w, H, 3, ks, tl.program_id(1) * BLOCK_N, BLOCK_N)
        else:
            w_r = load_wt_tile(w, H, 0, ks, cols)
            w_z = load_wt_tile(w, H, 1, ks, cols)
            w_n = load_wt_tile(w, H, 2, ks, cols)
        h = tl.load(h_buf + (S0 % 2) * B * H + off, mask=mask, other=0.0, cache_modifier=".cg")
        x_next = _gru_gx(gx, time_index(S0, T, REVERSE), B, H, rows, cols)  # step S0's input gates
        for s in range(S0, S0 + STEPS):
            t = time_index(s, T, REVERSE)
            t_load = time_index(load_step(s, T - 1, 1, PREFETCH), T, REVERSE)  # issued before the barrier
            x, x_next = prefetched(x_next, _gru_gx(gx, t_load, B, H, rows, cols), PREFETCH)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            hk = read_state(h_buf, xch, s, B * H, k_off, k_mask, TAGGED).to(dt)
            if FUSED > 0:
                acc_r, acc_z, acc_n, _ = split_gates(dot(hk, w4, None, PRECISION, UPCAST), BLOCK_B, BLOCK_N)
            else:
                acc_r = dot(hk, w_r, None, PRECISION, UPCAST)
                acc_z = dot(hk, w_z, None, PRECISION, UPCAST)
                acc_n = dot(hk, w_n, None, PRECISION, UPCAST)
            h = _gru_fwd_cell(
                x, b, out, gates, ghn, t, B, H, rows, cols, acc_r, acc_z, acc_n, h, valid,
                HAS_BIAS, SAVE, FAST,
            )  # fmt: skip
            write_state(h_buf, xch, counter, s, B * H, off, mask, h, SYNC, TAGGED)  # before step s + 1 reads
    else:
        # This program's column tiles of every gate (see launch.Plan); h_{t-1} read from L2 (.cg).
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
                if FUSED > 0:  # the three gates' W^T tiles and a zero fourth side by side, one product
                    acc4 = tl.zeros((BLOCK_B, 4 * BLOCK_N), tl.float32)
                else:
                    acc_r = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                    acc_z = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                    acc_n = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                for k0 in range(0, H, BLOCK_K):
                    ks = k0 + offs_k
                    k_mask = state_tile(rows, row_mask, ks, H)[1]
                    hk = tl.load(
                        h_read + rows[:, None] * H + ks[None, :], mask=k_mask, other=0.0, cache_modifier=".cg"
                    )
                    hk = hk.to(dt)
                    if FUSED > 0:
                        acc4 = dot(hk, load_wt_gates(w, H, 3, ks, n0, BLOCK_N), acc4, PRECISION, UPCAST)
                    else:
                        acc_r = dot(hk, load_wt_tile(w, H, 0, ks, cols), acc_r, PRECISION, UPCAST)
                        acc_z = dot(hk, load_wt_tile(w, H, 1, ks, cols), acc_z, PRECISION, UPCAST)
                        acc_n = dot(hk, load_wt_tile(w, H, 2, ks, cols), acc_n, PRECISION, UPCAST)
                if FUSED > 0:
                    acc_r, acc_z, acc_n, _ = split_gates(acc4, BLOCK_B, BLOCK_N)
                off, mask = state_tile(rows, row_mask, cols, H)
                h_prev = tl.load(h_read + off, mask=mask, other=0.0, cache_modifier=".cg")
                x = _gru_gx(gx, t, B, H, rows, cols)
                h = _gru_fwd_cell(
                    x, b, out, gates, ghn, t, B, H, rows, cols, acc_r, acc_z, acc_n, h_prev, valid,
                    HAS_BIAS, SAVE, FAST,
                )  # fmt: skip
                tl.store(h_write + off, h, mask=mask)
            step_sync(counter, (s + 1) * tl.num_programs(1), SYNC)  # h_t complete before step s + 1 reads it


@triton.jit
def _gru_bwd_load(
    gates, ghn, out, h0, lengths, d_out, s, T, B, H, rows, cols,
    REVERSE: tl.constexpr, HAS_LENGTHS: tl.constexpr,
):  # fmt: skip
    """What processing step s's gate gradients need, in the stored dtype: d_out[t] (zeros when ``d_out`` is
    None), the saved gh_n, z, n, r at its time t, and h_{t-1}: ``out`` of the step processed before, if
    there was one and it was valid, h0 otherwise."""
    row_mask = rows < B
    mask = row_mask[:, None] & (cols < H)[None, :]
    t = time_index(s, T, REVERSE)
    row = t.to(tl.int64) * B + rows[:, None]
    g_off = row * 3 * H + cols[None, :]
    dy = tl.zeros(mask.shape, tl.float32)  # a constant the compiler folds away (also where carried)
    if d_out is not None:  # None (a compile-time constant) when only the final state took a gradient
        if REVERSE == 2:
            dy = both_directions_gradient(d_out, row, cols, H, mask)
        else:
            dy = tl.load(d_out + row * H + cols[None, :], mask=mask, other=0.0)
    gh_n = tl.load(ghn + row * H + cols[None, :], mask=mask, other=0.0)
    r = tl.load(gates + g_off, mask=mask, other=0.0)
    z = tl.load(gates + g_off + H, mask=mask, other=0.0)
    n = tl.load(gates + g_off + 2 * H, mask=mask, other=0.0)
    t_prev = time_index(tl.maximum(s - 1, 0), T, REVERSE)  # in bounds; unused when s == 0
    prev_valid = step_validity(lengths, rows, row_mask, t_prev, HAS_LENGTHS)
    prev_off = (t_prev.to(tl.int64) * B + rows[:, None]) * H + cols[None, :]
    h_first = tl.load(h0 + rows[:, None] * H + cols[None, :], mask=mask, other=0.0)
    h_prev = tl.where(prev_valid, tl.load(out + prev_off, mask=mask, other=0.0), h_first)
    h_prev = tl.where(s > 0, h_prev, h_first)
    return dy, gh_n, z, n, r, h_prev


@triton.jit
def _gru_bwd_cell(loaded, d_out, d_gates, d_ghn, t, B, H, rows, cols, dh, valid):
    """Gate gradients of one tile at time t from ``loaded`` (``_gru_bwd_load``) and dh carried in from step
    t+1 (without d_out[t]). Stores d gx = [d_r, d_z, d_n][t] in ``d_gates``, which may be the saved ``gates``
    itself (d_r, d_z and d_n are each computed from the r, z, n its slot held, so that value has been read,
    by whichever thread, before the store), and d gh_n = d_n * r in ``d_ghn``, never ``ghn`` (it is not
    computed from the gh_n it would replace: only a barrier would order the two, and a barrier in the time
    loop stops the compiler pipelining the on-chip backward's loads). Returns the fp32 hidden-side gate
    gradients and the part of dh_{t-1} that bypasses W (z * dh, or all of dh on a frozen step)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    row = t.to(tl.int64) * B + rows[:, None]
    g_off = row * 3 * H + cols[None, :]
    dy, gh_n, z, n, r, h_prev = loaded
    if d_out is not None:
        dh = dh + tl.where(valid, dy.to(tl.float32), 0.0)
    gh_n, z, n, r = gh_n.to(tl.float32), z.to(tl.float32), n.to(tl.float32), r.to(tl.float32)
    h_prev = h_prev.to(tl.float32)
    k_n = (1.0 - z) * (1.0 - n * n)
    d_r = tl.where(valid, dh * k_n * gh_n * r * (1.0 - r), 0.0)
    d_z = tl.where(valid, dh * (h_prev - n) * z * (1.0 - z), 0.0)
    d_n = tl.where(valid, dh * k_n, 0.0)
    d_hn = d_n * r
    dt = d_gates.dtype.element_ty
    tl.store(d_gates + g_off, d_r.to(dt), mask=mask)  # from r
    tl.store(d_gates + g_off + H, d_z.to(dt), mask=mask)  # from z
    tl.store(d_gates + g_off + 2 * H, d_n.to(dt), mask=mask)  # from n
    tl.store(d_ghn + row * H + cols[None, :], d_hn.to(dt), mask=mask)
    dh_bypass = tl.where(valid, dh * z, dh)
    return d_r, d_z, d_hn, dh_bypass


@triton.jit(do_not_specialize=["T", "S0", "STEPS"])
def _gru_bwd_kernel(
    w, gates, ghn, out, h0, lengths, d_out, d_gates, d_ghn, dh_buf, T, B, H, counter, xch, S0, STEPS,
    SYNC: tl.constexpr, TAGGED: tl.constexpr, PHASE1: tl.constexpr, PHASE2: tl.constexpr,
    HAS_LENGTHS: tl.constexpr, REVERSE: tl.constexpr, ON_CHIP: tl.constexpr, RESIDENT: tl.constexpr,
    PREFETCH: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr, FUSED: tl.constexpr,  # 0, 1 or 2: launch._fused
    W_T: tl.constexpr,  # w is W_hh^T (H, G*H): common.backward_weight
):  # fmt: skip
    # dh_buf (B, H) fp32: d h_n in, dh0 out. Processing steps run s = T-1 .. 0. PREFETCH (resident
    # path): step s - 1's saved values are loaded while step s computes (on chip the compiler already
    # pipelines those loads, through shared memory).
    if REVERSE == 2:  # both directions in one launch: this program's direction of each stacked buffer
        seq = T.to(tl.int64) * B * H
        w, gates, d_gates = directed(w, 3 * H * H), directed(gates, 3 * seq), directed(d_gates, 3 * seq)
        ghn, d_ghn, out = directed(ghn, seq), directed(d_ghn, seq), directed(out, seq)
        h0, dh_buf = directed(h0, B * H), directed(dh_buf, B * H)
        if d_out is not None:  # the layer's (T, B, 2, H) gradient: both_directions_gradient
            d_out = directed(d_out, H)
        if SYNC:  # (None otherwise, as xch is without TAGGED)
            counter = directed(counter, tl.num_programs(0))
        if TAGGED:
            xch = directed(xch, 2 * B * 3 * H)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    dt = w.dtype.element_ty
    if ON_CHIP:
        cols = tl.arange(0, BLOCK_N)
        off, mask = state_tile(rows, row_mask, cols, H)
        w_r = load_w_tile(w, H, 0, cols, cols, 3, W_T)
        w_z = load_w_tile(w, H, 1, cols, cols, 3, W_T)
        w_n = load_w_tile(w, H, 2, cols, cols, 3, W_T)
        dh = tl.load(dh_buf + off, mask=mask, other=0.0)
        for r in range(T):  # (its loads are pipelined by the compiler: no PREFETCH here)
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            v = _gru_bwd_load(
                gates, ghn, out, h0, lengths, d_out, s, T, B, H, rows, cols, REVERSE, HAS_LENGTHS
            )
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            d_r, d_z, d_hn, dh = _gru_bwd_cell(v, d_out, d_gates, d_ghn, t, B, H, rows, cols, dh, valid)
            dh = dot(d_r.to(dt), w_r, dh, PRECISION, UPCAST)
            dh = dot(d_z.to(dt), w_z, dh, PRECISION, UPCAST)
            dh = dot(d_hn.to(dt), w_n, dh, PRECISION, UPCAST)
        tl.store(dh_buf + off, dh, mask=mask)
    elif RESIDENT:
        # One column tile per program: its slice of each gate's W resident, this tile's dh in registers for
        # the launch (in dh_buf between step-by-step launches).
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        off, mask = state_tile(rows, row_mask, cols, H)
        k_mask = state_tile(rows, row_mask, ks, H)[1]
        if FUSED > 1 and not TAGGED:  # (4, padded H, BLOCK_N), a zero fourth: one batched dot
            w3 = load_w_gates(w, H, 3, ks, cols, W_T)
        else:
            w_r = load_w_tile(w, H, 0, ks, cols, 3, W_T)
            w_z = load_w_tile(w, H, 1, ks, cols, 3, W_T)
            w_n = load_w_tile(w, H, 2, ks, cols, 3, W_T)
        dh = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
        v_next = _gru_bwd_load(
            gates, ghn, out, h0, lengths, d_out, T - 1 - S0, T, B, H, rows, cols, REVERSE, HAS_LENGTHS
        )
        for r in range(S0, S0 + STEPS):
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            if PHASE1:  # gate gradients of this tile to global memory; dh becomes the bypass of dh_{t-1}
                s_load = load_step(s, 0, -1, PREFETCH)  # the next step's loads, in flight through the barrier
                loaded = _gru_bwd_load(
                    gates, ghn, out, h0, lengths, d_out, s_load, T, B, H, rows, cols, REVERSE, HAS_LENGTHS
                )
                v, v_next = prefetched(v_next, loaded, PREFETCH)
                d_r, d_z, d_hn, dh = _gru_bwd_cell(v, d_out, d_gates, d_ghn, t, B, H, rows, cols, dh, valid)
                if TAGGED:  # [d_r, d_z, d gh_n] to every program as tagged words
                    g_off = rows[:, None] * 3 * H + cols[None, :]
                    gdt = d_gates.dtype.element_ty
                    post_gradient(xch, r, B * 3 * H, g_off, mask, d_r, gdt)
                    post_gradient(xch, r, B * 3 * H, g_off + H, mask, d_z, gdt)
                    post_gradient(xch, r, B * 3 * H, g_off + 2 * H, mask, d_hn, gdt)
            if not TAGGED:
                step_sync(counter, (r + 1) * tl.num_programs(1), SYNC)  # all gate gradients of t written
            if PHASE2 and TAGGED:  # the same product, its operands from the tagged words
                x_off = rows[:, None] * 3 * H + ks[None, :]
                size = B * 3 * H
                gdt = d_gates.dtype.element_ty
                d_r, d_z = tagged_gradient_pair(xch, r, size, x_off, x_off + H, k_mask, gdt)
                dh = dot(d_r, w_r, dh, PRECISION, UPCAST)
                dh = dot(d_z, w_z, dh, PRECISION, UPCAST)
                d_hn = tagged_gradient(xch, r, size, x_off + 2 * H, k_mask, gdt)
                dh = dot(d_hn, w_n, dh, PRECISION, UPCAST)
            elif PHASE2 and FUSED > 1:  # the same in one product: d_r, d_z from d_gates, d gh_n from d_ghn
                row = (t.to(tl.int64) * B + rows[:, None])[None, :, :]
                gate = tl.arange(0, 4)[:, None, None]
                ptrs = (
                    tl.where(gate < 2, d_gates + row * 3 * H + gate * H, d_ghn + row * H) + ks[None, None, :]
                )
                g_mask = (gate < 3) & k_mask[None, :, :]
                dg3 = tl.load(ptrs, mask=g_mask, other=0.0, cache_modifier=".cg")  # (4, BLOCK_B, padded H)
                dh = gate_product(dg3, w3, dh, PRECISION, UPCAST)
            elif PHASE2:  # dh_{t-1} = bypass + [d_r, d_z, d gh_n] (B, 3H) @ W_hh (3H, this tile)
                row = t.to(tl.int64) * B + rows[:, None]
                k_off = row * 3 * H + ks[None, :]
                d_r = tl.load(d_gates + k_off, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(d_r, w_r, dh, PRECISION, UPCAST)
                d_z = tl.load(d_gates + k_off + H, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(d_z, w_z, dh, PRECISION, UPCAST)
                d_hn = tl.load(d_ghn + row * H + ks[None, :], mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(d_hn, w_n, dh, PRECISION, UPCAST)
        tl.store(dh_buf + off, dh, mask=mask)
    else:
        offs_n = tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        n_first, n_step = tl.program_id(1) * BLOCK_N, tl.num_programs(1) * BLOCK_N
        for r in range(S0, S0 + STEPS):
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            if PHASE1:  # this program's columns: gate gradients to global memory; dh_buf keeps the bypass
                for n0 in range(n_first, H, n_step):
                    cols = n0 + offs_n
                    off, mask = state_tile(rows, row_mask, cols, H)
                    dh = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    v = _gru_bwd_load(
                        gates, ghn, out, h0, lengths, d_out, s, T, B, H, rows, cols, REVERSE, HAS_LENGTHS
                    )
                    _, _, _, dh_bypass = _gru_bwd_cell(
                        v, d_out, d_gates, d_ghn, t, B, H, rows, cols, dh, valid
                    )
                    tl.store(dh_buf + off, dh_bypass, mask=mask)
            step_sync(counter, (r + 1) * tl.num_programs(1), SYNC)  # all gate gradients of t written
            # dh_{t-1} = bypass + [d_r, d_z, d gh_n] (B, 3H) @ W_hh (3H, H), this program's columns
            if PHASE2:
                for n0 in range(n_first, H, n_step):
                    cols = n0 + offs_n
                    off, mask = state_tile(rows, row_mask, cols, H)
                    acc = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    for k0 in range(0, H, BLOCK_K):
                        ks = k0 + offs_k
                        k_mask = state_tile(rows, row_mask, ks, H)[1]
                        row = t.to(tl.int64) * B + rows[:, None]
                        # d_r, d_z, d gh_n against W_hr, W_hz, W_hn, each tile loaded just before its product
                        for gate in tl.static_range(3):
                            if gate < 2:
                                dg_ptrs = d_gates + row * 3 * H + gate * H + ks[None, :]
                            else:
                                dg_ptrs = d_ghn + row * H + ks[None, :]
                            dg = tl.load(dg_ptrs, mask=k_mask, other=0.0, cache_modifier=".cg")
                            acc = dot(dg, load_w_tile(w, H, gate, ks, cols, 3, W_T), acc, PRECISION, UPCAST)
                    tl.store(dh_buf + off, acc, mask=mask)
                tl.debug_barrier()


def _gru_fwd_impl(
    gx: Tensor,
    w_hh: Tensor,
    b_hh: Optional[Tensor],  # noqa: UP045  (torch.library's schema inference wants Optional)
    h0: Tensor,
    lengths: Optional[Tensor],  # noqa: UP045
    reverse: bool,
    save: bool,
    block_h: int,
    overwrite_gx: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Returns out (T, B, H), h_n, and for backward the gates [r, z, n] (T, B, 3H) and gh_n (T, B, H) (empty
    unless ``save``). With ``save`` and ``overwrite_gx`` the gates are gx itself, overwritten (never under
    torch.compile: the registered op does not declare the mutation)."""
    directions = common.stacked_directions(gx, reverse)
    *lead, steps, batch, three_h = gx.shape  # lead: [2] when both directions are stacked
    hidden = three_h // 3
    gx, w_hh = gx.contiguous(), w_hh.contiguous()
    state_shape = (*lead, steps, batch, hidden)
    out = common.new_buffer(state_shape, gx.dtype, gx.device)
    if save and overwrite_gx:
        gates = gx  # element by element, r, z, n are computed from the x_r, x_z, x_n they are stored over
    else:
        gates = common.new_buffer(gx.shape if save else (0,), gx.dtype, gx.device)
    ghn = common.new_buffer(state_shape if save else (0,), gx.dtype, gx.device)
    h_buf = common.fp32_state(h0, slots=2)  # ([2,] 2, B, H) fp32: h0, then the steps in turn
    if steps > 0 and batch > 0:
        plan = launch.plan(3, hidden, batch, gx.dtype, gx.device, block_h, directions=directions)
        bias = None if b_hh is None else b_hh.contiguous()
        saved = (gates, ghn) if save else (None, None)
        args = (gx, w_hh, bias, lengths, out, *saved, h_buf, steps, batch, hidden)
        with common.device_guard(gx):
            launch.run(
                _gru_fwd_kernel, plan, steps, args, exchange=(batch, hidden), directions=directions,
                shared=(lengths,),
                HAS_BIAS=b_hh is not None, HAS_LENGTHS=lengths is not None, REVERSE=reverse, SAVE=save,
                FAST=common.fast_math(),
            )  # fmt: skip
    return out, common.in_dtype(h_buf[..., steps % 2, :, :], gx.dtype), gates, ghn


def _gru_bwd_impl(
    d_out: Optional[Tensor],  # noqa: UP045  (None: the sequence output took no gradient)
    d_hn: Optional[Tensor],  # noqa: UP045  (None: the final state took none)
    w_hh: Tensor,
    gates: Tensor,
    ghn: Tensor,
    out: Tensor,
    h0: Tensor,
    lengths: Optional[Tensor],  # noqa: UP045
    reverse: bool,
    block_h: int,
    d_gates: Tensor,
    d_ghn: Tensor,
) -> Tensor:
    """Fills d_gates (T, B, 3H) with d gx = [d_r, d_z, d_n] and d_ghn (T, B, H) with d gh_n, and returns dh0.
    ``d_gates`` may be ``gates`` itself, ``d_ghn`` must not be ``ghn`` (see _gru_bwd_cell)."""
    directions = common.stacked_directions(out, reverse)
    steps, batch, hidden = out.shape[-3:]
    w_hh, w_t = common.backward_weight(w_hh)  # ([2,] H, G*H) in fp32: W_T
    dh_buf = common.fp32_gradient(d_hn, h0.shape, h0.device)  # ([2,] B, H) fp32
    if steps > 0 and batch > 0:
        plan = launch.plan(3, hidden, batch, out.dtype, out.device, block_h, directions=directions)
        d_out = common.output_gradient_arg(d_out, plan)
        args = (w_hh, gates, ghn, out.contiguous(), h0.contiguous(), lengths, d_out, d_gates, d_ghn, dh_buf)
        with common.device_guard(out):
            launch.run(
                _gru_bwd_kernel, plan, steps, (*args, steps, batch, hidden), phased=True,
                exchange=(batch, 3 * hidden), directions=directions, shared=(lengths,),
                HAS_LENGTHS=lengths is not None, REVERSE=reverse, W_T=w_t,
            )  # fmt: skip
    return common.in_dtype(dh_buf, h0.dtype)


# Registered with torch.library (what torch.compile traces); eager calls use the implementations directly
# through common.eager_autograd / common.op_or_impl.
_gru_fwd = torch.library.custom_op(
    "rnnlab::gru_fwd", common.never_overwriting("rnnlab::gru_fwd", _gru_fwd_impl), mutates_args=()
)
_gru_bwd = torch.library.custom_op("rnnlab::gru_bwd", _gru_bwd_impl, mutates_args=("d_gates", "d_ghn"))


@_gru_fwd.register_fake
def _(gx, w_hh, b_hh, h0, lengths, reverse, save, block_h, overwrite_gx):
    state_shape = (*gx.shape[:-1], gx.shape[-1] // 3)
    return (
        gx.new_empty(state_shape),
        gx.new_empty(h0.shape),
        gx.new_empty(gx.shape if save else (0,)),
        gx.new_empty(state_shape if save else (0,)),
    )


@_gru_bwd.register_fake
def _(d_out, d_hn, w_hh, gates, ghn, out, h0, lengths, reverse, block_h, d_gates, d_ghn):
    return h0.new_empty(h0.shape)


def _setup_context(ctx, inputs, output):
    gx, w_hh, b_hh, h0, lengths, reverse, save, block_h, overwrite_gx = inputs
    out, _, gates, ghn = output
    if not save:
        raise RuntimeError("rnnlab::gru_fwd was called with save=False but a gradient is needed")
    if gates is gx:  # overwritten (eager calls only: this runs inside the autograd.Function's forward)
        ctx.mark_dirty(gx)
    ctx.reverse, ctx.block_h, ctx.has_bias = reverse, block_h, b_hh is not None
    ctx.save_for_backward(out, w_hh, h0, gates, ghn, lengths)
    common.no_gradient_for(ctx, gates, ghn)


def _backward(ctx, d_out, d_hn, _d_gates, _d_ghn):
    out, w_hh, h0, gates, ghn, lengths = ctx.saved_tensors
    d_gx = common.gradient_buffer(gates)  # (T, B, 3H): the saved gates themselves when not needed again
    d_ghn = common.new_buffer(ghn.shape, ghn.dtype, ghn.device)  # (T, B, H): never over ghn (_gru_bwd_cell)
    bwd = common.op_or_impl(_gru_bwd, _gru_bwd_impl, w_hh)  # the custom op inside torch.compile
    dh0 = bwd(d_out, d_hn, w_hh, gates, ghn, out, h0, lengths, ctx.reverse, ctx.block_h, d_gx, d_ghn)
    lead, hidden = w_hh.shape[:-2], h0.shape[-1]  # lead: (2,) when both directions are stacked
    d_rz = d_gx[..., : 2 * hidden]  # r, z: the same on both sides
    # ([2,] 3H, H) and ([2,] 3H): r, z rows from d_rz, n rows from the hidden side d gh_n, each in place
    d_w_hh = d_gx.new_empty(*lead, 3 * hidden, hidden)
    for rows, grad in ((slice(0, 2 * hidden), d_rz), (slice(2 * hidden, None), d_ghn)):
        common.recurrent_weight_grad(grad, out, h0, lengths, ctx.reverse, into=d_w_hh[..., rows, :])
    d_b_hh = None
    if ctx.has_bias:
        d_b_hh = d_gx.new_empty(*lead, 3 * hidden)
        torch.sum(d_rz, dim=(-3, -2), out=d_b_hh[..., : 2 * hidden])
        torch.sum(d_ghn, dim=(-3, -2), out=d_b_hh[..., 2 * hidden :])
    return d_gx, d_w_hh, d_b_hh, dh0, None, None, None, None, None


_gru_fwd.register_autograd(_backward, setup_context=_setup_context)
_gru_forward = common.eager_autograd(_gru_fwd, _gru_fwd_impl, _setup_context, _backward)


def gru_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    b_hh: Optional[Tensor],  # noqa: UP045
    h0: Tensor,
    lengths: Optional[Tensor] = None,  # noqa: UP045
    reverse: bool = False,
    *,
    overwrite_gx: bool = False,
) -> tuple[Tensor, Tensor]:
    """Run a GRU over precomputed input gates with the fused Triton kernels.

    gx: (T, B, 3H) = x @ W_ih.T + b_ih, time-major, gate order (r, z, n); w_hh: (3H, H); b_hh: (3H,) or
    None (kept apart from gx because the reset gate multiplies its n part); h0: (B, H); lengths: (B,)
    integers or None; reverse: walk t = T-1 .. 0. One dtype (fp32, bf16 or fp16); the state is fp32.
    Returns out (T, B, H) (zero past each row's length) and h_n (B, H). Differentiable in gx, w_hh, b_hh
    and h0. Same semantics as ``rnnlab.reference.gru_recurrence``.

    ``overwrite_gx=True``, for a caller that owns gx and does not read it again: while training, the gates
    r, z, n saved for backward are written over gx instead of a new (T, B, 3H) buffer (and the backward then
    writes d gx over them); gx's contents afterwards are unspecified. A leaf gx that requires grad is refused
    (ValueError). Ignored under torch.compile and when no gradient is needed.

    Both directions of a bidirectional layer at once: gx (2, T, B, 3H), w_hh (2, 3H, H), b_hh (2, 3H) or
    None, h0 (2, B, H), reverse False; direction 1 runs in reverse, and out, h_n come back stacked likewise
    (one launch where ``launch.bidir_launch`` says so).

    Example::

        gx = x @ w_ih.T + b_ih  # (T, B, 3H)
        out, h_n = gru_recurrence(gx, w_hh, b_hh, h0, lengths=lengths, reverse=True)
    """
    return _gru(gx, w_hh, b_hh, h0, lengths, reverse, overwrite_gx=overwrite_gx)


def _gru(gx, w_hh, b_hh, h0, lengths=None, reverse=False, block_h=0, overwrite_gx=False):
    """``gru_recurrence`` with the tile size exposed (tests force the tiled path with block_h=16)."""
    hidden = common.check_inputs(gx, w_hh, h0, 3)
    common.stacked_directions(gx, reverse)
    expected = (*gx.shape[:-3], 3 * hidden)
    if b_hh is not None and (tuple(b_hh.shape) != expected or b_hh.dtype != gx.dtype):
        raise ValueError(f"b_hh must be {expected} in {gx.dtype}, got {tuple(b_hh.shape)} {b_hh.dtype}")
    lengths = common.lengths_arg(lengths, gx.shape[-2], gx.device)
    save = common.needs_grad(gx, w_hh, b_hh, h0)
    overwrite = common.overwrite_allowed(gx, overwrite_gx, save)
    out, h_n, _, _ = _gru_forward(gx, w_hh, b_hh, h0, lengths, reverse, save, block_h, overwrite)
    return out, h_n
