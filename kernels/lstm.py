"""Fused LSTM recurrence: one Triton launch for all T steps forward, one for the backward time loop.

Same math and conventions as ``rnnlab.reference.lstm`` (torch.nn gate order i, f, g, o):

    i, f, o = sigmoid(.)    g = tanh(.)    of  gx_t + h_{t-1} @ W_hh.T
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Saved for backward: the post-activation gates (T, B, 4H) and the cell states (T, B, H) in the input dtype, and
``out`` (returned anyway). A caller that owns gx and will not read it again (the layers) may have the gates
written over it (``overwrite_gx``): each step's gx is read before its gates are stored in the same place.
The backward kernel writes dG (T, B, 4H) = d gx, into the saved gates themselves when the graph is not kept
(``common.gradient_buffer``), and returns dh0 and dc0; dW_hh is two GEMMs over all steps afterwards, on
``out`` and h0 (``common.recurrent_weight_grad``).
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
    load_gate_rows,
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
    tagged_gradient_pair,
    tanh,
    time_index,
    write_state,
)


@triton.jit
def _lstm_gx(gx, t, B, H, rows, cols):
    """The input gates gx[t] (i, f, g, o) of one (BLOCK_B, BLOCK_N) tile, in gx's dtype (zero past B, H)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    g_off = (t.to(tl.int64) * B + rows[:, None]) * 4 * H + cols[None, :]
    x_i = tl.load(gx + g_off, mask=mask, other=0.0)
    x_f = tl.load(gx + g_off + H, mask=mask, other=0.0)
    x_g = tl.load(gx + g_off + 2 * H, mask=mask, other=0.0)
    x_o = tl.load(gx + g_off + 3 * H, mask=mask, other=0.0)
    return x_i, x_f, x_g, x_o


@triton.jit
def _lstm_fwd_cell(
    x, out, gates, cells, t, B, H, rows, cols, acc_i, acc_f, acc_g, acc_o, h_prev, c_prev, valid,
    SAVE: tl.constexpr, FAST: tl.constexpr,
):  # fmt: skip
    """Gate math of one (BLOCK_B, BLOCK_N) tile at time t, given its input gates ``x`` (``_lstm_gx``) and
    h_{t-1} @ W^T per gate; stores out[t] (and the gates and c_t when SAVE). Returns the new fp32 (h, c),
    frozen where the step is not valid."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    row = t.to(tl.int64) * B + rows[:, None]  # (BLOCK_B, 1) index of (t, b)
    g_off = row * 4 * H + cols[None, :]
    s_off = row * H + cols[None, :]
    i = sigmoid(acc_i + x[0].to(tl.float32), FAST)
    f = sigmoid(acc_f + x[1].to(tl.float32), FAST)
    g = tanh(acc_g + x[2].to(tl.float32), FAST)
    o = sigmoid(acc_o + x[3].to(tl.float32), FAST)
    c = tl.where(valid, f * c_prev + i * g, c_prev)
    h = tl.where(valid, o * tanh(c, FAST), h_prev)
    tl.store(out + s_off, tl.where(valid, h, 0.0).to(out.dtype.element_ty), mask=mask)
    if SAVE:
        dt = gates.dtype.element_ty
        tl.store(gates + g_off, i.to(dt), mask=mask)
        tl.store(gates + g_off + H, f.to(dt), mask=mask)
        tl.store(gates + g_off + 2 * H, g.to(dt), mask=mask)
        tl.store(gates + g_off + 3 * H, o.to(dt), mask=mask)
        tl.store(cells + s_off, c.to(dt), mask=mask)
    return h, c


@triton.jit(do_not_specialize=["T", "S0", "STEPS"])
def _lstm_fwd_kernel(
    gx, w, lengths, out, gates, cells, h_buf, c_buf, T, B, H, counter, xch, S0, STEPS,
    SYNC: tl.constexpr, TAGGED: tl.constexpr,
    HAS_LENGTHS: tl.constexpr, REVERSE: tl.constexpr, SAVE: tl.constexpr,
    ON_CHIP: tl.constexpr, RESIDENT: tl.constexpr, PREFETCH: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr, FUSED: tl.constexpr,  # 0, 1 or 2: launch._fused
    FAST: tl.constexpr,  # device.sigmoid: common.fast_math
):  # fmt: skip
    # h_buf (2, B, H) fp32: h0 in slot 0; step s reads slot s % 2 and writes the other (tiled path), the
    # final h lands in slot T % 2. c_buf (B, H) fp32: c0 in, c_T out, updated in place tile by tile.
    # PREFETCH (on chip, resident): step s + 1's input gates are loaded while step s computes.
    if REVERSE == 2:  # both directions in one launch: this program's direction of each stacked buffer
        seq = T.to(tl.int64) * B * H
        gx, out, w = directed(gx, 4 * seq), directed(out, seq), directed(w, 4 * H * H)
        h_buf, c_buf = directed(h_buf, 2 * B * H), directed(c_buf, B * H)
        if SAVE:  # (None otherwise)
            gates, cells = directed(gates, 4 * seq), directed(cells, seq)
        if SYNC:  # (None otherwise, as xch is without TAGGED)
            counter = directed(counter, tl.num_programs(0))
        if TAGGED:
            xch = directed(xch, 2 * B * H)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    dt = w.dtype.element_ty
    if ON_CHIP:
        # One tile covers H (BLOCK_N == BLOCK_K): W^T per gate loaded once, state in registers.
        cols = tl.arange(0, BLOCK_N)
        off, mask = state_tile(rows, row_mask, cols, H)
        w_i = load_wt_tile(w, H, 0, cols, cols)
        w_f = load_wt_tile(w, H, 1, cols, cols)
        w_g = load_wt_tile(w, H, 2, cols, cols)
        w_o = load_wt_tile(w, H, 3, cols, cols)
        h = tl.load(h_buf + off, mask=mask, other=0.0)
        c = tl.load(c_buf + off, mask=mask, other=0.0)
        x_next = _lstm_gx(gx, time_index(0, T, REVERSE), B, H, rows, cols)  # step 0's input gates
        for s in range(T):
            t = time_index(s, T, REVERSE)
            t_load = time_index(load_step(s, T - 1, 1, PREFETCH), T, REVERSE)
            x, x_next = prefetched(x_next, _lstm_gx(gx, t_load, B, H, rows, cols), PREFETCH)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            hd = h.to(dt)
            acc_i = dot(hd, w_i, None, PRECISION, UPCAST)
            acc_f = dot(hd, w_f, None, PRECISION, UPCAST)
            acc_g = dot(hd, w_g, None, PRECISION, UPCAST)
            acc_o = dot(hd, w_o, None, PRECISION, UPCAST)
            h, c = _lstm_fwd_cell(
                x, out, gates, cells, t, B, H, rows, cols, acc_i, acc_f, acc_g, acc_o, h, c, valid, SAVE, FAST
            )
        tl.store(h_buf + (T % 2) * B * H + off, h, mask=mask)
        tl.store(c_buf + off, c, mask=mask)
    elif RESIDENT:
        # One column tile per program, its (BLOCK_K = padded H, BLOCK_N) slice of W^T per gate loaded once;
        # this tile's h and c stay in registers for the launch, the whole h_{t-1} is read from L2 each step.
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        off, mask = state_tile(rows, row_mask, cols, H)
        k_off, k_mask = state_tile(rows, row_mask, ks, H)
        if FUSED > 0:  # the four gates' slices side by side: one product, across the warps
            w4 = load_wt_gates(w, H, 4, ks, tl.program_id(1) * BLOCK_N, BLOCK_N)
        else:
            w_i = load_wt_tile(w, H, 0, ks, cols)
            w_f = load_wt_tile(w, H, 1, ks, cols)
            w_g = load_wt_tile(w, H, 2, ks, cols)
            w_o = load_wt_tile(w, H, 3, ks, cols)
        h = tl.load(h_buf + (S0 % 2) * B * H + off, mask=mask, other=0.0, cache_modifier=".cg")
        c = tl.load(c_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
        x_next = _lstm_gx(gx, time_index(S0, T, REVERSE), B, H, rows, cols)  # step S0's input gates
        for s in range(S0, S0 + STEPS):
            t = time_index(s, T, REVERSE)
            t_load = time_index(load_step(s, T - 1, 1, PREFETCH), T, REVERSE)  # issued before the barrier
            x, x_next = prefetched(x_next, _lstm_gx(gx, t_load, B, H, rows, cols), PREFETCH)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            hk = read_state(h_buf, xch, s, B * H, k_off, k_mask, TAGGED).to(dt)
            if FUSED > 0:
                acc_i, acc_f, acc_g, acc_o = split_gates(
                    dot(hk, w4, None, PRECISION, UPCAST), BLOCK_B, BLOCK_N
                )
            else:
                acc_i = dot(hk, w_i, None, PRECISION, UPCAST)
                acc_f = dot(hk, w_f, None, PRECISION, UPCAST)
                acc_g = dot(hk, w_g, None, PRECISION, UPCAST)
                acc_o = dot(hk, w_o, None, PRECISION, UPCAST)
            h, c = _lstm_fwd_cell(
                x, out, gates, cells, t, B, H, rows, cols, acc_i, acc_f, acc_g, acc_o, h, c, valid, SAVE, FAST
            )
            write_state(h_buf, xch, counter, s, B * H, off, mask, h, SYNC, TAGGED)  # before step s + 1 reads
        tl.store(c_buf + off, c, mask=mask)
    else:
        # W_hh re-read every step in (BLOCK_K, BLOCK_N) tiles; h_{t-1} comes from the scratch slot written
        # by the previous step (.cg: read from L2, where every program's stores went). This program owns the
        # column tiles n0 = pid_n * BLOCK_N + j * (programs) * BLOCK_N of every gate (see launch.Plan).
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
                if FUSED > 0:  # the four gates' W^T tiles side by side, one product per K tile
                    acc4 = tl.zeros((BLOCK_B, 4 * BLOCK_N), tl.float32)
                else:
                    acc_i = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                    acc_f = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                    acc_g = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                    acc_o = tl.zeros((BLOCK_B, BLOCK_N), tl.float32)
                for k0 in range(0, H, BLOCK_K):
                    ks = k0 + offs_k
                    k_mask = state_tile(rows, row_mask, ks, H)[1]
                    hk = tl.load(
                        h_read + rows[:, None] * H + ks[None, :], mask=k_mask, other=0.0, cache_modifier=".cg"
                    )
                    hk = hk.to(dt)
                    if FUSED > 0:
                        acc4 = dot(hk, load_wt_gates(w, H, 4, ks, n0, BLOCK_N), acc4, PRECISION, UPCAST)
                    else:
                        acc_i = dot(hk, load_wt_tile(w, H, 0, ks, cols), acc_i, PRECISION, UPCAST)
                        acc_f = dot(hk, load_wt_tile(w, H, 1, ks, cols), acc_f, PRECISION, UPCAST)
                        acc_g = dot(hk, load_wt_tile(w, H, 2, ks, cols), acc_g, PRECISION, UPCAST)
                        acc_o = dot(hk, load_wt_tile(w, H, 3, ks, cols), acc_o, PRECISION, UPCAST)
                if FUSED > 0:
                    acc_i, acc_f, acc_g, acc_o = split_gates(acc4, BLOCK_B, BLOCK_N)
                off, mask = state_tile(rows, row_mask, cols, H)
                h_prev = tl.load(h_read + off, mask=mask, other=0.0, cache_modifier=".cg")
                c_prev = tl.load(c_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                x = _lstm_gx(gx, t, B, H, rows, cols)
                h, c = _lstm_fwd_cell(
                    x, out, gates, cells, t, B, H, rows, cols, acc_i, acc_f, acc_g, acc_o, h_prev, c_prev,
                    valid, SAVE, FAST,
                )  # fmt: skip
                tl.store(h_write + off, h, mask=mask)
                tl.store(c_buf + off, c, mask=mask)
            step_sync(counter, (s + 1) * tl.num_programs(1), SYNC)  # h_t complete before step s + 1 reads it


@triton.jit
def _lstm_bwd_load(gates, cells, c0, d_out, s, T, B, H, rows, cols, REVERSE: tl.constexpr):
    """What processing step s's gate gradients need, in the stored dtypes: d_out[t] (zeros when ``d_out`` is
    None), the saved gates i, f, g, o and c_t at its time t, and c_{t-1} (c0 on the first step)."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    t = time_index(s, T, REVERSE)
    t_prev = time_index(tl.maximum(s - 1, 0), T, REVERSE)  # in bounds; unused when s == 0
    row = t.to(tl.int64) * B + rows[:, None]
    g_off = row * 4 * H + cols[None, :]
    s_off = row * H + cols[None, :]
    dy = tl.zeros(mask.shape, tl.float32)  # a constant the compiler folds away (also where carried)
    if d_out is not None:  # None (a compile-time constant) when only the final state took a gradient
        if REVERSE == 2:
            dy = both_directions_gradient(d_out, row, cols, H, mask)
        else:
            dy = tl.load(d_out + s_off, mask=mask, other=0.0)
    i = tl.load(gates + g_off, mask=mask, other=0.0)
    f = tl.load(gates + g_off + H, mask=mask, other=0.0)
    g = tl.load(gates + g_off + 2 * H, mask=mask, other=0.0)
    o = tl.load(gates + g_off + 3 * H, mask=mask, other=0.0)
    c = tl.load(cells + s_off, mask=mask, other=0.0)
    prev_off = (t_prev.to(tl.int64) * B + rows[:, None]) * H + cols[None, :]
    c_prev = tl.load(cells + prev_off, mask=mask, other=0.0)
    c_first = tl.load(c0 + rows[:, None] * H + cols[None, :], mask=mask, other=0.0)
    c_prev = tl.where(s > 0, c_prev, c_first)  # the first processed step starts from c0
    return dy, i, f, g, o, c, c_prev


@triton.jit
def _lstm_bwd_cell(loaded, d_out, d_gates, t, B, H, rows, cols, dh, dc, valid):
    """Gate gradients of one tile at time t from ``loaded`` (``_lstm_bwd_load``), dh (without d_out[t]) and
    dc carried in from step t+1. Stores dG[t]; returns the fp32 gate gradients, the part of dh_{t-1} that
    bypasses W (frozen steps) and dc_{t-1}. ``d_gates`` may be ``gates`` itself: each gradient is computed
    from the saved value in its own slot (d_i from i, d_f from f, d_g from g, d_o from o), so that value has
    been read, by whichever thread, before the store overwrites it."""
    mask = (rows < B)[:, None] & (cols < H)[None, :]
    g_off = (t.to(tl.int64) * B + rows[:, None]) * 4 * H + cols[None, :]
    dy, i, f, g, o, c, c_prev = loaded
    if d_out is not None:
        dh = dh + tl.where(valid, dy.to(tl.float32), 0.0)
    i, f, g, o = i.to(tl.float32), f.to(tl.float32), g.to(tl.float32), o.to(tl.float32)
    tanh_c = tanh(c.to(tl.float32), False)  # (the forward's FAST: a few ulp apart)
    c_prev = c_prev.to(tl.float32)
    dc = tl.where(valid, dc + dh * o * (1.0 - tanh_c * tanh_c), dc)
    d_i = tl.where(valid, dc * g * i * (1.0 - i), 0.0)
    d_f = tl.where(valid, dc * c_prev * f * (1.0 - f), 0.0)
    d_g = tl.where(valid, dc * i * (1.0 - g * g), 0.0)
    d_o = tl.where(valid, dh * tanh_c * o * (1.0 - o), 0.0)
    dt = d_gates.dtype.element_ty
    tl.store(d_gates + g_off, d_i.to(dt), mask=mask)
    tl.store(d_gates + g_off + H, d_f.to(dt), mask=mask)
    tl.store(d_gates + g_off + 2 * H, d_g.to(dt), mask=mask)
    tl.store(d_gates + g_off + 3 * H, d_o.to(dt), mask=mask)
    dc = tl.where(valid, dc * f, dc)  # a frozen step passes dc (and dh) through unchanged
    dh_bypass = tl.where(valid, 0.0, dh)
    return d_i, d_f, d_g, d_o, dh_bypass, dc


@triton.jit(do_not_specialize=["T", "S0", "STEPS"])
def _lstm_bwd_kernel(
    w, gates, cells, c0, lengths, d_out, d_gates, dh_buf, dc_buf, T, B, H, counter, xch, S0, STEPS,
    SYNC: tl.constexpr, TAGGED: tl.constexpr, PHASE1: tl.constexpr, PHASE2: tl.constexpr,
    HAS_LENGTHS: tl.constexpr, REVERSE: tl.constexpr, ON_CHIP: tl.constexpr, RESIDENT: tl.constexpr,
    PREFETCH: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr, FUSED: tl.constexpr,  # 0, 1 or 2: launch._fused
    W_T: tl.constexpr,  # w is W_hh^T (H, G*H): common.backward_weight
):  # fmt: skip
    # dh_buf, dc_buf (B, H) fp32: d h_n, d c_n in; dh0, dc0 out. Processing steps run s = T-1 .. 0.
    # PREFETCH (resident path): step s - 1's saved values are loaded while step s computes (on chip the
    # compiler already pipelines those loads, through shared memory).
    if REVERSE == 2:  # both directions in one launch: this program's direction of each stacked buffer
        seq = T.to(tl.int64) * B * H
        w, gates, d_gates = directed(w, 4 * H * H), directed(gates, 4 * seq), directed(d_gates, 4 * seq)
        cells, c0 = directed(cells, seq), directed(c0, B * H)
        dh_buf, dc_buf = directed(dh_buf, B * H), directed(dc_buf, B * H)
        if d_out is not None:  # the layer's (T, B, 2, H) gradient: both_directions_gradient
            d_out = directed(d_out, H)
        if SYNC:  # (None otherwise, as xch is without TAGGED)
            counter = directed(counter, tl.num_programs(0))
        if TAGGED:
            xch = directed(xch, 2 * B * 4 * H)
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    dt = w.dtype.element_ty
    if ON_CHIP:
        cols = tl.arange(0, BLOCK_N)
        off, mask = state_tile(rows, row_mask, cols, H)
        w_i = load_w_tile(w, H, 0, cols, cols, 4, W_T)
        w_f = load_w_tile(w, H, 1, cols, cols, 4, W_T)
        w_g = load_w_tile(w, H, 2, cols, cols, 4, W_T)
        w_o = load_w_tile(w, H, 3, cols, cols, 4, W_T)
        dh = tl.load(dh_buf + off, mask=mask, other=0.0)
        dc = tl.load(dc_buf + off, mask=mask, other=0.0)
        for r in range(T):  # (its loads are pipelined by the compiler: no PREFETCH here)
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            saved = _lstm_bwd_load(gates, cells, c0, d_out, s, T, B, H, rows, cols, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            d_i, d_f, d_g, d_o, dh, dc = _lstm_bwd_cell(
                saved, d_out, d_gates, t, B, H, rows, cols, dh, dc, valid
            )
            dh = dot(d_i.to(dt), w_i, dh, PRECISION, UPCAST)
            dh = dot(d_f.to(dt), w_f, dh, PRECISION, UPCAST)
            dh = dot(d_g.to(dt), w_g, dh, PRECISION, UPCAST)
            dh = dot(d_o.to(dt), w_o, dh, PRECISION, UPCAST)
        tl.store(dh_buf + off, dh, mask=mask)
        tl.store(dc_buf + off, dc, mask=mask)
    elif RESIDENT:
        # One column tile per program: its (padded H, BLOCK_N) slice of each gate's W resident, this tile's
        # dh and dc in registers for the launch (in dh_buf / dc_buf between step-by-step launches).
        cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        off, mask = state_tile(rows, row_mask, cols, H)
        k_mask = state_tile(rows, row_mask, ks, H)[1]
        if FUSED > 1 and not TAGGED:  # (4, padded H, BLOCK_N): the gates' products as one batched dot
            w3 = load_w_gates(w, H, 4, ks, cols, W_T)
        else:
            w_i = load_w_tile(w, H, 0, ks, cols, 4, W_T)
            w_f = load_w_tile(w, H, 1, ks, cols, 4, W_T)
            w_g = load_w_tile(w, H, 2, ks, cols, 4, W_T)
            w_o = load_w_tile(w, H, 3, ks, cols, 4, W_T)
        dh = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
        dc = tl.load(dc_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
        saved_next = _lstm_bwd_load(gates, cells, c0, d_out, T - 1 - S0, T, B, H, rows, cols, REVERSE)
        for r in range(S0, S0 + STEPS):
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            if PHASE1:  # dG[t] of this tile to global memory; dh becomes the part of dh_{t-1} bypassing W
                s_load = load_step(s, 0, -1, PREFETCH)  # the next step's loads, in flight through the barrier
                loaded = _lstm_bwd_load(gates, cells, c0, d_out, s_load, T, B, H, rows, cols, REVERSE)
                saved, saved_next = prefetched(saved_next, loaded, PREFETCH)
                d_i, d_f, d_g, d_o, dh, dc = _lstm_bwd_cell(
                    saved, d_out, d_gates, t, B, H, rows, cols, dh, dc, valid
                )
                if TAGGED:  # the same values to every program as tagged words
                    g_off = rows[:, None] * 4 * H + cols[None, :]
                    gdt = d_gates.dtype.element_ty
                    post_gradient(xch, r, B * 4 * H, g_off, mask, d_i, gdt)
                    post_gradient(xch, r, B * 4 * H, g_off + H, mask, d_f, gdt)
                    post_gradient(xch, r, B * 4 * H, g_off + 2 * H, mask, d_g, gdt)
                    post_gradient(xch, r, B * 4 * H, g_off + 3 * H, mask, d_o, gdt)
            if not TAGGED:
                step_sync(counter, (r + 1) * tl.num_programs(1), SYNC)  # all of dG[t] written first
            if PHASE2 and TAGGED:  # the same product, its operands from the tagged words
                x_off = rows[:, None] * 4 * H + ks[None, :]
                size = B * 4 * H
                gdt = d_gates.dtype.element_ty
                d_i, d_f = tagged_gradient_pair(xch, r, size, x_off, x_off + H, k_mask, gdt)
                dh = dot(d_i, w_i, dh, PRECISION, UPCAST)
                dh = dot(d_f, w_f, dh, PRECISION, UPCAST)
                d_g, d_o = tagged_gradient_pair(xch, r, size, x_off + 2 * H, x_off + 3 * H, k_mask, gdt)
                dh = dot(d_g, w_g, dh, PRECISION, UPCAST)
                dh = dot(d_o, w_o, dh, PRECISION, UPCAST)
            elif PHASE2 and FUSED > 1:  # the same, the four gates' products at once
                k_off = (t.to(tl.int64) * B + rows[:, None]) * 4 * H + ks[None, :]
                dg3 = load_gate_rows(d_gates, k_off, H, 4, k_mask)  # (4, BLOCK_B, padded H)
                dh = gate_product(dg3, w3, dh, PRECISION, UPCAST)
            elif PHASE2:  # dh_{t-1} = bypass + dG[t] (B, 4H) @ W_hh (4H, this tile)
                k_off = (t.to(tl.int64) * B + rows[:, None]) * 4 * H + ks[None, :]
                dg = tl.load(d_gates + k_off, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(dg, w_i, dh, PRECISION, UPCAST)
                dg = tl.load(d_gates + k_off + H, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(dg, w_f, dh, PRECISION, UPCAST)
                dg = tl.load(d_gates + k_off + 2 * H, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(dg, w_g, dh, PRECISION, UPCAST)
                dg = tl.load(d_gates + k_off + 3 * H, mask=k_mask, other=0.0, cache_modifier=".cg")
                dh = dot(dg, w_o, dh, PRECISION, UPCAST)
        tl.store(dh_buf + off, dh, mask=mask)
        tl.store(dc_buf + off, dc, mask=mask)
    else:
        offs_n = tl.arange(0, BLOCK_N)
        offs_k = tl.arange(0, BLOCK_K)
        n_first, n_step = tl.program_id(1) * BLOCK_N, tl.num_programs(1) * BLOCK_N
        for r in range(S0, S0 + STEPS):
            s = T - 1 - r
            t = time_index(s, T, REVERSE)
            valid = step_validity(lengths, rows, row_mask, t, HAS_LENGTHS)
            if PHASE1:  # this program's columns: dG[t] to global memory, dh_buf keeps the bypass of dh_{t-1}
                for n0 in range(n_first, H, n_step):
                    cols = n0 + offs_n
                    off, mask = state_tile(rows, row_mask, cols, H)
                    dh = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    dc = tl.load(dc_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    saved = _lstm_bwd_load(gates, cells, c0, d_out, s, T, B, H, rows, cols, REVERSE)
                    _, _, _, _, dh_bypass, dc = _lstm_bwd_cell(
                        saved, d_out, d_gates, t, B, H, rows, cols, dh, dc, valid
                    )
                    tl.store(dh_buf + off, dh_bypass, mask=mask)
                    tl.store(dc_buf + off, dc, mask=mask)
            step_sync(counter, (r + 1) * tl.num_programs(1), SYNC)  # all of dG[t] written before it is read
            if PHASE2:  # dh_{t-1} = bypass + dG[t] (B, 4H) @ W_hh (4H, H), this program's columns
                for n0 in range(n_first, H, n_step):
                    cols = n0 + offs_n
                    off, mask = state_tile(rows, row_mask, cols, H)
                    acc = tl.load(dh_buf + off, mask=mask, other=0.0, cache_modifier=".cg")
                    for k0 in range(0, H, BLOCK_K):
                        ks = k0 + offs_k
                        k_mask = state_tile(rows, row_mask, ks, H)[1]
                        k_off = (t.to(tl.int64) * B + rows[:, None]) * 4 * H + ks[None, :]
                        for gate in tl.static_range(4):
                            dg = tl.load(
                                d_gates + k_off + gate * H, mask=k_mask, other=0.0, cache_modifier=".cg"
                            )
                            acc = dot(dg, load_w_tile(w, H, gate, ks, cols, 4, W_T), acc, PRECISION, UPCAST)
                    tl.store(dh_buf + off, acc, mask=mask)
                tl.debug_barrier()


def _lstm_fwd_impl(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    lengths: Optional[Tensor],  # noqa: UP045  (torch.library's schema inference wants Optional)
    reverse: bool,
    save: bool,
    block_h: int,
    overwrite_gx: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns out (T, B, H), h_n, c_n, and for backward gates (T, B, 4H), cells (T, B, H) (empty unless
    ``save``). With ``save`` and ``overwrite_gx`` the gates are gx itself, overwritten (never under
    torch.compile: the registered op does not declare the mutation)."""
    directions = common.stacked_directions(gx, reverse)
    *lead, steps, batch, four_h = gx.shape  # lead: [2] when both directions are stacked
    hidden = four_h // 4
    gx, w_hh = gx.contiguous(), w_hh.contiguous()
    state_shape = (*lead, steps, batch, hidden)
    out = common.new_buffer(state_shape, gx.dtype, gx.device)
    if save and overwrite_gx:
        gates = gx  # element by element, each step's gx is read before its gates are stored over it
    else:
        gates = common.new_buffer(gx.shape if save else (0,), gx.dtype, gx.device)
    cells = common.new_buffer(state_shape if save else (0,), gx.dtype, gx.device)
    h_buf = common.fp32_state(h0, slots=2)  # ([2,] 2, B, H) fp32: h0, then the steps in turn
    c_buf = common.fp32_state(c0)  # ([2,] B, H) fp32
    if steps > 0 and batch > 0:
        plan = launch.plan(4, hidden, batch, gx.dtype, gx.device, block_h, directions=directions)
        args = (gx, w_hh, lengths, out, gates if save else None, cells if save else None, h_buf, c_buf)
        with common.device_guard(gx):
            launch.run(
                _lstm_fwd_kernel, plan, steps, (*args, steps, batch, hidden), exchange=(batch, hidden),
                directions=directions, shared=(lengths,),
                HAS_LENGTHS=lengths is not None, REVERSE=reverse, SAVE=save, FAST=common.fast_math(),
            )  # fmt: skip
    h_n = common.in_dtype(h_buf[..., steps % 2, :, :], gx.dtype)
    return out, h_n, common.in_dtype(c_buf, gx.dtype), gates, cells


def _lstm_bwd_impl(
    d_out: Optional[Tensor],  # noqa: UP045  (None: the sequence output took no gradient)
    d_hn: Optional[Tensor],  # noqa: UP045  (None: the final states took none)
    d_cn: Optional[Tensor],  # noqa: UP045
    w_hh: Tensor,
    gates: Tensor,
    cells: Tensor,
    c0: Tensor,
    lengths: Optional[Tensor],  # noqa: UP045
    reverse: bool,
    block_h: int,
    d_gates: Tensor,
) -> tuple[Tensor, Tensor]:
    """Fills d_gates (T, B, 4H) (= d gx) and returns dh0, dc0. ``d_gates`` may be ``gates`` itself: each
    element's gradient is computed from that element's own saved value, read first (see _lstm_bwd_cell)."""
    directions = common.stacked_directions(gates, reverse)
    steps, batch, four_h = gates.shape[-3:]
    hidden = four_h // 4
    w_hh, w_t = common.backward_weight(w_hh)  # ([2,] H, G*H) in fp32: W_T
    dh_buf, dc_buf = (common.fp32_gradient(g, c0.shape, c0.device) for g in (d_hn, d_cn))  # ([2,] B, H) fp32
    if steps > 0 and batch > 0:
        plan = launch.plan(4, hidden, batch, gates.dtype, gates.device, block_h, directions=directions)
        d_out = common.output_gradient_arg(d_out, plan)
        args = (w_hh, gates, cells, c0.contiguous(), lengths, d_out, d_gates, dh_buf, dc_buf)
        with common.device_guard(gates):
            launch.run(
                _lstm_bwd_kernel, plan, steps, (*args, steps, batch, hidden), phased=True,
                exchange=(batch, four_h), directions=directions, shared=(lengths,),
                HAS_LENGTHS=lengths is not None, REVERSE=reverse, W_T=w_t,
            )  # fmt: skip
    return common.in_dtype(dh_buf, c0.dtype), common.in_dtype(dc_buf, c0.dtype)


# Registered with torch.library (what torch.compile traces); eager calls use the implementations directly
# through common.eager_autograd / common.op_or_impl.
_lstm_fwd = torch.library.custom_op(
    "rnnlab::lstm_fwd", common.never_overwriting("rnnlab::lstm_fwd", _lstm_fwd_impl), mutates_args=()
)
_lstm_bwd = torch.library.custom_op("rnnlab::lstm_bwd", _lstm_bwd_impl, mutates_args=("d_gates",))


@_lstm_fwd.register_fake
def _(gx, w_hh, h0, c0, lengths, reverse, save, block_h, overwrite_gx):
    state = gx.new_empty(*gx.shape[:-1], gx.shape[-1] // 4)
    return (
        state,
        gx.new_empty(h0.shape),
        gx.new_empty(c0.shape),
        gx.new_empty(gx.shape if save else (0,)),
        gx.new_empty(state.shape if save else (0,)),
    )


@_lstm_bwd.register_fake
def _(d_out, d_hn, d_cn, w_hh, gates, cells, c0, lengths, reverse, block_h, d_gates):
    return c0.new_empty(c0.shape), c0.new_empty(c0.shape)


def _setup_context(ctx, inputs, output):
    gx, w_hh, h0, c0, lengths, reverse, save, block_h, overwrite_gx = inputs
    out, _, _, gates, cells = output
    if not save:
        raise RuntimeError("rnnlab::lstm_fwd was called with save=False but a gradient is needed")
    if gates is gx:  # overwritten (eager calls only: this runs inside the autograd.Function's forward)
        ctx.mark_dirty(gx)
    ctx.reverse, ctx.block_h = reverse, block_h
    ctx.save_for_backward(out, w_hh, h0, c0, gates, cells, lengths)
    common.no_gradient_for(ctx, gates, cells)


def _backward(ctx, d_out, d_hn, d_cn, _d_gates, _d_cells):
    out, w_hh, h0, c0, gates, cells, lengths = ctx.saved_tensors
    d_gx = common.gradient_buffer(gates)  # (T, B, 4H): the saved gates themselves when not needed again
    bwd = common.op_or_impl(_lstm_bwd, _lstm_bwd_impl, w_hh)  # the custom op inside torch.compile
    dh0, dc0 = bwd(d_out, d_hn, d_cn, w_hh, gates, cells, c0, lengths, ctx.reverse, ctx.block_h, d_gx)
    d_w_hh = common.recurrent_weight_grad(d_gx, out, h0, lengths, ctx.reverse)  # (4H, H)
    return d_gx, d_w_hh, dh0, dc0, None, None, None, None, None


_lstm_fwd.register_autograd(_backward, setup_context=_setup_context)
_lstm_forward = common.eager_autograd(_lstm_fwd, _lstm_fwd_impl, _setup_context, _backward)


def lstm_recurrence(
    gx: Tensor,
    w_hh: Tensor,
    h0: Tensor,
    c0: Tensor,
    lengths: Optional[Tensor] = None,  # noqa: UP045
    reverse: bool = False,
    *,
    overwrite_gx: bool = False,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run an LSTM over precomputed input gates with the fused Triton kernels.

    gx: (T, B, 4H) = x @ W_ih.T + b_ih + b_hh, time-major, torch.nn gate order (i, f, g, o);
    w_hh: (4H, H); h0, c0: (B, H); lengths: (B,) integers or None; reverse: walk t = T-1 .. 0.
    All in one dtype (fp32, bf16 or fp16); the state is carried in fp32.
    Returns out (T, B, H) (zero past each row's length), h_n (B, H), c_n (B, H). Differentiable in gx,
    w_hh, h0 and c0. Same semantics as ``rnnlab.reference.lstm_recurrence``.

    ``overwrite_gx=True``, for a caller that owns gx and does not read it again: while training, the gates
    saved for backward are written over gx instead of a new (T, B, 4H) buffer (and the backward then
    writes d gx over them), so gx's memory is reused twice; gx's contents afterwards are unspecified. A
    leaf gx that requires grad is refused (ValueError). Ignored under torch.compile and when no gradient
    is needed.

    Both directions of a bidirectional layer at once: gx (2, T, B, 4H), w_hh (2, 4H, H), h0, c0 (2, B, H),
    reverse False; direction 1 runs in reverse, and out, h_n, c_n come back stacked likewise (one launch
    where ``launch.bidir_launch`` says so).

    Example::

        gx = x @ w_ih.T + (b_ih + b_hh)  # (T, B, 4H)
        out, h_n, c_n = lstm_recurrence(gx, w_hh, h0, c0, lengths=lengths)
    """
    return _lstm(gx, w_hh, h0, c0, lengths, reverse, overwrite_gx=overwrite_gx)


def _lstm(gx, w_hh, h0, c0, lengths=None, reverse=False, block_h=0, overwrite_gx=False):
    """``lstm_recurrence`` with the tile size exposed (tests force the tiled path with block_h=16)."""
    common.check_inputs(gx, w_hh, h0, 4, c0)
    common.stacked_directions(gx, reverse)
    lengths = common.lengths_arg(lengths, gx.shape[-2], gx.device)
    save = common.needs_grad(gx, w_hh, h0, c0)
    overwrite = common.overwrite_allowed(gx, overwrite_gx, save)
    out, h_n, c_n, _, _ = _lstm_forward(gx, w_hh, h0, c0, lengths, reverse, save, block_h, overwrite)
    return out, h_n, c_n
