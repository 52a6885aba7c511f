"""Elman RNN recurrence: h_t = act(gx_t + h_{t-1} @ W_hh.T), act one of tanh, relu, sigmoid.

The activation's derivative is read off its output (1 - h^2, h (1 - h), h > 0), so the backward pass
needs only the saved states; its loop is one multiply and one (B, H) @ (H, H) product per step.
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

NONLINEARITIES = ("tanh", "relu", "sigmoid")


def _relu(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.clamp_min(x, 0, out=out)  # torch.relu has no out=; clamp_min keeps NaN as relu does


_ACTIVATE = {"tanh": tanh, "relu": _relu, "sigmoid": torch.sigmoid}


def _derivative_from_output(h: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "sigmoid":
        return h * (1 - h)
    return (h > 0).to(h.dtype)


def _forward_loop(gx, w_hh, h0, mask, nonlinearity):
    steps, batch, hidden = gx.shape
    step = StepMatmul(w_hh, batch)
    activate = _ACTIVATE[nonlinearity]
    states = gx.new_empty(steps, batch, hidden)  # written in place: stacking T tensors is slow
    h = h0
    for t, gx_t in enumerate(gx.unbind(0)):
        if mask is None:
            h = activate(step(h, gx_t), out=states[t])
        else:
            h = torch.where(mask[t], activate(step(h, gx_t)), h, out=states[t])
    return states


class RNNRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx, w_hh, h0, mask, reverse, nonlinearity):
        gx_p, mask_p = to_processing_order(gx, reverse), to_processing_order(mask, reverse)
        states = _forward_loop(gx_p, w_hh, h0, mask_p, nonlinearity)
        out = masked(states, mask_p)
        h_n = (states[-1] if states.shape[0] else h0).clone()
        ctx.reverse, ctx.nonlinearity = reverse, nonlinearity
        # h_n, an output, saved for first_derivatives_only: its node leads to gx, which is not saved
        ctx.save_for_backward(states, w_hh, h0, mask_p, h_n)
        return to_processing_order(out, reverse), h_n

    @staticmethod
    @first_derivatives_only
    def backward(ctx, d_out, d_hn):
        states, w_hh, h0, mask, _ = ctx.saved_tensors
        steps, batch, hidden = states.shape
        d_hn = zeros_if_none(d_hn, h0)
        if steps == 0:
            return states.new_zeros(0, batch, hidden), torch.zeros_like(w_hh), d_hn, None, None, None
        d_out = masked(to_processing_order(zeros_if_none(d_out, states), ctx.reverse), mask)

        slope = masked(_derivative_from_output(states, ctx.nonlinearity), mask)  # (T, B, H)
        if mask is not None:
            passthrough = (~mask).to(states.dtype)

        step = StepMatmul(w_hh.t(), batch)  # d_pre_t @ W_hh
        d_pre = states.new_empty(steps, batch, hidden)
        dh = d_out[-1] + d_hn
        for t in range(steps - 1, -1, -1):
            torch.mul(dh, slope[t], out=d_pre[t])
            addend = d_out[t - 1] if t > 0 else None
            if mask is not None:
                kept = dh * passthrough[t]
                addend = kept if addend is None else addend + kept
            dh = step(d_pre[t], addend)

        h_prev = previous_states(h0, states)
        d_w_hh = d_pre.reshape(-1, hidden).t() @ h_prev.reshape(-1, hidden)  # (H, H), one GEMM
        return to_processing_order(d_pre, ctx.reverse), d_w_hh, dh, None, None, None


def rnn_recurrence(
    gx: torch.Tensor,
    w_hh: torch.Tensor,
    h0: torch.Tensor,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    nonlinearity: str = "tanh",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run an Elman RNN over precomputed input projections.

    gx: (T, B, H) = x @ W_ih.T + b_ih + b_hh; w_hh: (H, H); h0: (B, H); lengths: (B,) or None;
    nonlinearity: "tanh", "relu" or "sigmoid". Returns out (T, B, H), h_n (B, H). Both directions at once:
    gx (2, T, B, H), w_hh (2, H, H), h0 (2, B, H), outputs stacked likewise (``both_directions``).
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    check_inputs(gx, w_hh, {"h0": h0}, 1, lengths=lengths, reverse=reverse)
    return _rnn(gx, w_hh, h0, lengths, reverse, nonlinearity)


def _rnn(gx, w_hh, h0, lengths, reverse, nonlinearity):
    """``rnn_recurrence`` on checked arguments."""
    if gx.dim() == 4:
        return both_directions(lambda d: _rnn(gx[d], w_hh[d], h0[d], lengths, d == 1, nonlinearity), reverse)
    mask = validity_mask(lengths, gx.shape[0], gx.device)
    return RNNRecurrence.apply(gx, w_hh, h0, mask, reverse, nonlinearity)
