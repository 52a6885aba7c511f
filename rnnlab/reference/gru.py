"""GRU recurrence with torch.nn/cuDNN semantics: the reset gate multiplies (W_hn h + b_hn).

    r, z = sigmoid(gx_{r,z} + h_{t-1} @ W_h{r,z}.T + b_h{r,z})
    n    = tanh(gx_n + r * (h_{t-1} @ W_hn.T + b_hn))
    h_t  = (1 - z) * n + z * h_{t-1}

Every gate gradient of step t is dh_t times a factor known from the forward pass alone, so the backward
loop only forms dh_t: one product with W_hh and three small ops per step. The input-gate gradients, dW_hh and
db_hh are whole-sequence ops after the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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


def _forward_loop(gx, w_hh, b_hh, h0, mask):
    """Processing-order loop, writing into preallocated buffers (stacking T small tensors is slow).
    Returns the r, z gates (T,B,2H), n (T,B,H) and the states (T,B,H)."""
    steps, batch, three_h = gx.shape
    hidden = three_h // 3
    step = StepMatmul(w_hh, batch)
    rzs = gx.new_empty(steps, batch, 2 * hidden)
    ns = gx.new_empty(steps, batch, hidden)
    states = gx.new_empty(steps, batch, hidden)
    h = h0
    for t, gx_t in enumerate(gx.unbind(0)):
        gh = step(h, b_hh)  # (B, 3H)
        rz = torch.add(gx_t[:, : 2 * hidden], gh[:, : 2 * hidden], out=rzs[t]).sigmoid_()
        r, z = rz.chunk(2, 1)
        n = tanh(torch.addcmul(gx_t[:, 2 * hidden :], r, gh[:, 2 * hidden :]), out=ns[t])
        if mask is None:
            h = torch.addcmul(n, z, h - n, out=states[t])
        else:
            h = torch.where(mask[t], torch.addcmul(n, z, h - n), h, out=states[t])
    return rzs, ns, states


class GRURecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, w_hh, b_hh, h0, mask, reverse):
        gx_p, mask_p = to_processing_order(gx, reverse), to_processing_order(mask, reverse)
        rz, n, states = _forward_loop(gx_p, w_hh, b_hh, h0, mask_p)
        out = masked(states, mask_p)
        h_n = (states[-1] if states.shape[0] else h0).clone()
        ctx.reverse = reverse
        ctx.has_bias = b_hh is not None
        # h_n, an output, saved for first_derivatives_only: its node leads to gx, which is not saved
        ctx.save_for_backward(rz, n, states, w_hh, b_hh, h0, mask_p, h_n)
        return to_processing_order(out, reverse), h_n

    @staticmethod
    @first_derivatives_only
    def backward(ctx, d_out, d_hn):
        rz, n, states, w_hh, b_hh, h0, mask, _ = ctx.saved_tensors
        steps, batch, hidden = n.shape
        d_hn = zeros_if_none(d_hn, h0)
        d_b_hh = w_hh.new_zeros(3 * hidden) if ctx.has_bias else None
        if steps == 0:
            return w_hh.new_zeros(0, batch, 3 * hidden), torch.zeros_like(w_hh), d_b_hh, d_hn, None, None
        d_out = masked(to_processing_order(zeros_if_none(d_out, states), ctx.reverse), mask)

        r, z = rz.chunk(2, dim=2)
        h_prev = previous_states(h0, states)
        # W_hn h_{t-1} + b_hn for every step: one GEMM here rather than a copy per step in the forward loop
        gh_n = F.linear(h_prev, w_hh[2 * hidden :], None if b_hh is None else b_hh[2 * hidden :])
        k_n = (1 - z) * (1 - n * n)  # d n_pre / d h_t
        k_z = (h_prev - n) * z * (1 - z)
        k_r = k_n * gh_n * r * (1 - r)
        k_x = torch.stack([k_r, k_z, k_n], dim=2)  # (T, B, 3, H): dgx_t = dh_t * k_x[t]
        k_h = torch.stack([k_r, k_z, k_n * r], dim=2)  # (T, B, 3, H): dgh_t = dh_t * k_h[t]
        carry = z  # the direct path h_{t-1} -> h_t
        if mask is not None:
            k_x, k_h = masked(k_x, mask.unsqueeze(-1)), masked(k_h, mask.unsqueeze(-1))
            carry = torch.where(mask, z, z.new_ones(()))  # frozen steps pass dh through unchanged

        step = StepMatmul(w_hh.t(), batch)  # dgh_t @ W_hh
        d_gh = n.new_empty(steps, batch, 3, hidden)
        d_gx = n.new_empty(steps, batch, 3, hidden)
        dh = d_out[-1] + d_hn
        for t in range(steps - 1, -1, -1):
            dh_ = dh.unsqueeze(1)
            torch.mul(dh_, k_x[t], out=d_gx[t])
            torch.mul(dh_, k_h[t], out=d_gh[t])
            direct = torch.addcmul(d_out[t - 1], dh, carry[t]) if t > 0 else dh * carry[0]
            dh = step(d_gh[t].view(batch, 3 * hidden), direct)

        d_gx = d_gx.view(steps, batch, 3 * hidden)
        d_gh = d_gh.view(steps, batch, 3 * hidden)
        d_w_hh = d_gh.reshape(-1, 3 * hidden).t() @ h_prev.reshape(-1, hidden)  # (3H, H), one GEMM
        if ctx.has_bias:
            d_b_hh = d_gh.sum(dim=(0, 1))
        return to_processing_order(d_gx, ctx.reverse), d_w_hh, d_b_hh, dh, None, None


def gru_recurrence(
    gx: torch.Tensor,
    w_hh: torch.Tensor,
    b_hh: torch.Tensor | None,
    h0: torch.Tensor,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    *,
    overwrite_gx: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a GRU over precomputed input gates.

    gx: (T, B, 3H) = x @ W_ih.T + b_ih; w_hh: (3H, H); b_hh: (3H,) or None (kept apart from gx because
    the reset gate multiplies its n part); h0: (B, H); lengths: (B,) or None.
    Returns out (T, B, H), h_n (B, H). See ``rnnlab.reference.common`` for the conventions.
    ``overwrite_gx`` is the fused kernels' permission to reuse gx's memory (``rnnlab.kernels``); the
    reference accepts it for the same signature and never writes to gx. Both directions at once: gx
    (2, T, B, 3H), w_hh (2, 3H, H), b_hh (2, 3H) or None, h0 (2, B, H), outputs stacked likewise
    (``both_directions``).
    """
    check_inputs(gx, w_hh, {"h0": h0}, 3, b_hh=b_hh, lengths=lengths, reverse=reverse)
    return _gru(gx, w_hh, b_hh, h0, lengths, reverse)


def _gru(gx, w_hh, b_hh, h0, lengths, reverse):
    """``gru_recurrence`` on checked arguments."""
    if gx.dim() == 4:
        bias = (None, None) if b_hh is None else b_hh
        return both_directions(lambda d: _gru(gx[d], w_hh[d], bias[d], h0[d], lengths, d == 1), reverse)
    mask = validity_mask(lengths, gx.shape[0], gx.device)
    return GRURecurrence.apply(gx, w_hh, b_hh, h0, mask, reverse)
