"""The plain autograd time loop: the way one writes an RNN in PyTorch without a fused implementation, timed
beside the backends for scale. One layer, one direction, the layer's own weights."""

from __future__ import annotations

import torch


def plain_loop(layer, x: torch.Tensor) -> torch.Tensor:
    """x: (T, B, I) -> out (T, B, H), autograd through T small graphs."""
    w_ih, w_hh = layer.weight_ih_l0, layer.weight_hh_l0
    b_ih, b_hh = layer.bias_ih_l0, layer.bias_hh_l0
    h = x.new_zeros(x.shape[1], layer.hidden_size)
    c = h
    outputs = []
    for x_t in x:
        if layer._cell == "lstm":
            i, f, g, o = (x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        elif layer._cell == "gru":
            xr, xz, xn = (x_t @ w_ih.T + b_ih).chunk(3, 1)
            hr, hz, hn = (h @ w_hh.T + b_hh).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
        else:
            h = torch.tanh(x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        outputs.append(h)
    return torch.stack(outputs)
