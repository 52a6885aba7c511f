"""Building blocks shared by the models: the recurrent layer or cell named by a string."""

from __future__ import annotations

import torch
from torch import nn

from .. import cells, layers

CELLS = ("rnn", "gru", "lstm")


def make_rnn(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    backend: str = "auto",
    single_bias: bool = False,
) -> nn.Module:
    """A batch-first ``rnnlab.RNN``/``GRU``/``LSTM``; ``nonlinearity`` is used by ``cell="rnn"`` only."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    kwargs = dict(
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        bidirectional=bidirectional,
        batch_first=True,
        backend=backend,
        single_bias=single_bias,
    )
    if cell == "rnn":
        return layers.RNN(input_size, hidden_size, nonlinearity=nonlinearity, **kwargs)
    return (layers.GRU if cell == "gru" else layers.LSTM)(input_size, hidden_size, **kwargs)


def make_cell(
    cell: str, input_size: int, hidden_size: int, nonlinearity: str = "tanh", backend: str = "auto"
) -> nn.Module:
    """An ``rnnlab.RNNCell``/``GRUCell``/``LSTMCell`` for step-by-step decoding."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if cell == "rnn":
        return cells.RNNCell(input_size, hidden_size, nonlinearity=nonlinearity, backend=backend)
    return (cells.GRUCell if cell == "gru" else cells.LSTMCell)(input_size, hidden_size, backend=backend)


def last_layer_state(h_n: torch.Tensor, num_layers: int, directions: int) -> torch.Tensor:
    """(B, D*H): the top layer's final state, directions concatenated, from h_n of shape (L*D, B, H)."""
    top = h_n.view(num_layers, directions, h_n.shape[1], h_n.shape[2])[-1]  # (D, B, H)
    return top.transpose(0, 1).reshape(h_n.shape[1], -1)  # (B, D*H)


def valid_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(B, T) bool, True at the valid steps of each sequence."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
