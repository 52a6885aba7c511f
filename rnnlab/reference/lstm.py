"""LSTM recurrence: forward loop and hand-written BPTT backward. torch.nn gate order (i, f, g, o).

    i, f, o = sigmoid(.)    g = tanh(.)    of  gx_t + h_{t-1} @ W_hh.T
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

The backward pass hoists everything that does not depend on the running gradients (gate derivatives,
tanh(c), the mask) out of the time loop into whole-sequence tensor ops; the loop keeps only what is truly
sequential: five small ops and one (B, 4H) @ (4H, H) product per step. dW_hh is one GEMM over all steps
afterwards.
"""

from __future__ import annotations

import torch

from .common import (
    both_directions,
    check_inputs,
    first_derivatives_only,
    masked,
    previous_states,
    tanh,
    to_processing_order,
    validity_mask,
    zeros_if_none,
)
from .matmul import StepMatmul


def _forward_loop(gx, w_hh, h0, c0, mask):
    """Processing-order loop. Returns post-activation gates (T,B,4H), cell states and hidden states.

    Every step writes straight into the preallocated buffers (``out=``): stacking T small tensors
    afterwards costs as much as the gate math itself on the CPU.
    """
    steps, batch, four_h = gx.shape
    hidden = four_h // 4
    step = StepMatmul(w_hh, batch)
    gates = gx.new_empty(steps, batch, 4, hidden)
    cells = gx.new_empty(steps, batch, hidden)
    states = gx.new_empty(steps, batch, hidden)
    # per-step views, made once (indexing inside the loop costs a call per tensor per step)
    gate_s = gates.unbind(0)
    i_s, f_s, s_s, o_s = (gates[:, :, k].unbind(0) for k in range(4))
    cell_s, state_s = cells.unbind(0), states.unbind(0)
    mask_s = mask.unbind(0) if mask is not None else None
    h, c = h0, c0
    for t, gx_t in enumerate(gx.unbind(0)):
        pre = step(h, gx_t).view(batch, 4, hidden)  # pre-activations
        # One sigmoid for all four gates: g = tanh(x) = 2 sigmoid(2x) - 1, so the g slot holds sigmoid(2x)
        # (see common.tanh for why not torch.tanh on the CPU).
        pre[:, 2].mul_(2)
        torch.sigmoid(pre, out=gate_s[t])
        i, f, s_g, o = i_s[t], f_s[t], s_s[t], o_s[t]
        if mask is None:
            c = torch.addcmul(f * c, i, s_g, value=2, out=cell_s[t]).sub_(i)  # f c + i (2 s_g - 1)
            h = torch.mul(o, tanh(c), out=state_s[t])
        else:
            c_new = torch.addcmul(f * c, i, s_g, value=2).sub_(i)
            h_new = torch.mul(o, tanh(c_new))
            c = torch.where(mask_s[t], c_new, c, out=cell_s[t])
            h = torch.where(mask_s[t], h_new, h, out=state_s[t])
    gates = gates.view(steps, batch, four_h)
    return gates, cells, states


class LSTMRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, w_hh, h0, c0, mask, reverse):
        gx_p, mask_p = to_processing_order(gx, reverse), to_processing_order(mask, reverse)
        gates, cells, states = _forward_loop(gx_p, w_hh, h0, c0, mask_p)
        out = masked(states, mask_p)
        h_n = (states[-1] if states.shape[0] else h0).clone()
        c_n = cells[-1] if cells.shape[0] else c0
        ctx.reverse = reverse
        # h_n, an output, saved for first_derivatives_only: its node leads to gx, which is not saved
        ctx.save_for_backward(gates, cells, states, w_hh, h0, c0, mask_p, h_n)
        return to_processing_order(out, reverse), h_n, c_n.clone()

    @staticmethod
    @first_derivatives_only
    def backward(ctx, d_out, d_hn, d_cn):
        gates, cells, states, w_hh, h0, c0, mask, _ = ctx.saved_tensors
        steps, batch, four_h = gates.shape
        hidden = four_h // 4
        d_hn, d_cn = zeros_if_none(d_hn, h0), zeros_if_none(d_cn, c0)
        if steps == 0:
            return gates.new_zeros(0, batch, four_h), torch.zeros_like(w_hh), d_hn, d_cn, None, None
        d_out = masked(to_processing_order(zeros_if_none(d_out, states), ctx.reverse), mask)

        i, f, s_g, o = gates.view(steps, batch, 4, hidden).unbind(2)
        g = 2 * s_g - 1  # the forward pass keeps sigmoid(2x) in the g slot
        tanh_c = tanh(cells)
        c_prev = previous_states(c0, cells)
        # dG_t[i, f, g] = dc_t * k_ifg,  dG_t[o] = dh_t * k_o,  dc_t += dh_t * a
        k_ifg = torch.stack([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], dim=2)  # (T,B,3,H)
        k_o = tanh_c * o * (1 - o)
        a = o * (1 - tanh_c * tanh_c)
        carry = f  # dc_{t-1} = dc_t * f_t
        if mask is not None:
            k_ifg = masked(k_ifg, mask.unsqueeze(-1))
            k_o, a = masked(k_o, mask), masked(a, mask)
            carry = torch.where(mask, f, f.new_ones(()))  # frozen steps pass dc through unchanged
            passthrough = (~mask).to(gates.dtype)  # and dh too

        step = StepMatmul(w_hh.t(), batch)  # dG_t @ W_hh
        d_gates = gates.new_empty(steps, batch, 4, hidden)
        # per-step views, made once
        a_s, carry_s, k_ifg_s, k_o_s, d_out_s = (v.unbind(0) for v in (a, carry, k_ifg, k_o, d_out))
        d_ifg_s, d_o_s = d_gates[:, :, :3].unbind(0), d_gates[:, :, 3].unbind(0)
        d_flat_s = d_gates.view(steps, batch, four_h).unbind(0)
        keep_s = passthrough.unbind(0) if mask is not None else None
        dh = d_out[-1] + d_hn
        dc = d_cn
        for t in range(steps - 1, -1, -1):
            dc = torch.addcmul(dc, dh, a_s[t])
            torch.mul(dc.unsqueeze(1), k_ifg_s[t], out=d_ifg_s[t])
            torch.mul(dh, k_o_s[t], out=d_o_s[t])
            dc = dc * carry_s[t]
            addend = d_out_s[t - 1] if t > 0 else None
            if mask is not None:
                kept = dh * keep_s[t]
                addend = kept if addend is None else addend + kept
            dh = step(d_flat_s[t], addend)

        d_gates = d_gates.view(steps, batch, four_h)
        h_prev = previous_states(h0, states)
        d_w_hh = d_gates.reshape(-1, four_h).t() @ h_prev.reshape(-1, hidden)  # (4H, H), one GEMM
        return to_processing_order(d_gates, ctx.reverse), d_w_hh, dh, dc, None, None


def lstm_recurrence(
    gx: torch.Tensor,
    w_hh: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    *,
    overwrite_gx: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run an LSTM over precomputed input gates.

    gx: (T, B, 4H) = x @ W_ih.T + b_ih + b_hh; w_hh: (4H, H); h0, c0: (B, H); lengths: (B,) or None.
    Returns out (T, B, H), h_n (B, H), c_n (B, H). See ``rnnlab.reference.common`` for the conventions.
    ``overwrite_gx`` is the fused kernels' permission to reuse gx's memory (``rnnlab.kernels``); the
    reference accepts it for the same signature and never writes to gx. Both directions at once: gx
    (2, T, B, 4H), w_hh (2, 4H, H), h0, c0 (2, B, H), outputs stacked likewise (``both_directions``).
    """
    check_inputs(gx, w_hh, {"h0": h0, "c0": c0}, 4, lengths=lengths, reverse=reverse)
    return _lstm(gx, w_hh, h0, c0, lengths, reverse)


def _lstm(gx, w_hh, h0, c0, lengths, reverse):
    """``lstm_recurrence`` on checked arguments."""
    if gx.dim() == 4:
        return both_directions(lambda d: _lstm(gx[d], w_hh[d], h0[d], c0[d], lengths, d == 1), reverse)
    mask = validity_mask(lengths, gx.shape[0], gx.device)
    return LSTMRecurrence.apply(gx, w_hh, h0, c0, mask, reverse)
