"""rnnlab.RNNCell, LSTMCell, GRUCell: one step at a time, for decoding loops.

Drop-in for the torch.nn cells (they subclass them: same arguments, parameters and state_dict), with the
same ``backend`` switch as the layers. A step on the reference or triton backend is the layer's recurrence
run for T = 1, so a cell and a layer with the same weights give the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import backends
from .reference import NONLINEARITIES
from .validation import check_like


class _Cell(backends.BackendSwitch):
    _cell: str

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        """The LSTMCell and GRUCell constructor: torch.nn's arguments, then ``backend``."""
        super().__init__(input_size, hidden_size, bias, device=device, dtype=dtype)
        self.backend = backend

    def extra_repr(self) -> str:
        return super().extra_repr() + f", backend={self.backend!r}"

    def forward(self, input, hx=None):  # noqa: A002 - torch.nn's argument name
        if not isinstance(input, torch.Tensor) or input.dim() not in (1, 2):
            shape = tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__
            raise ValueError(f"input must be 2-D (B, input_size) or 1-D (input_size,), got {shape}")
        if input.shape[-1] != self.input_size:
            raise ValueError(
                f"input has feature size {input.shape[-1]}, but the cell's input_size is {self.input_size}"
            )
        if input.dim() == 2 and input.shape[0] == 0:
            raise ValueError("input has an empty batch (B=0); expected B >= 1")
        check_like("input", input, "the cell's weights", self.weight_ih)
        nonlinearity = getattr(self, "nonlinearity", "")
        backend = backends.resolve(
            self.backend, self._cell, self.hidden_size, input.dtype, input.device, nonlinearity
        )
        if backend == "cudnn":
            torch_nn_cell = next(c for c in type(self).__mro__ if c.__module__.startswith("torch.nn"))
            return torch_nn_cell.forward(self, input, hx)
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input  # (B, I)
        dtype = backends.compute_dtype(x)  # under torch.autocast, autocast's: as the layers
        states = [s.to(dtype) for s in self._states(hx, x, unbatched)]
        x = x.to(dtype)
        impl = backends.recurrences(backend)
        w_ih, w_hh = self.weight_ih.to(dtype), self.weight_hh.to(dtype)
        b_ih, b_hh = (self.bias_ih.to(dtype), self.bias_hh.to(dtype)) if self.bias else (None, None)
        if self._cell == "gru":
            gx = F.linear(x, w_ih, b_ih).unsqueeze(0)  # (1, B, 3H)
            _, h = impl.gru_recurrence(gx, w_hh, b_hh, states[0])
            result = h
        else:
            gx = F.linear(x, w_ih, None if b_ih is None else b_ih + b_hh).unsqueeze(0)
            if self._cell == "lstm":
                _, h, c = impl.lstm_recurrence(gx, w_hh, states[0], states[1])
                result = (h, c)
            else:
                _, h = impl.rnn_recurrence(gx, w_hh, states[0], nonlinearity=nonlinearity)
                result = h
        if unbatched:
            return tuple(r.squeeze(0) for r in result) if isinstance(result, tuple) else result.squeeze(0)
        return result

    def _states(self, hx, x, unbatched):
        count = 2 if self._cell == "lstm" else 1
        if hx is None:
            return [x.new_zeros(x.shape[0], self.hidden_size)] * count
        if self._cell == "lstm" and (not isinstance(hx, tuple | list) or len(hx) != 2):
            raise TypeError(f"hx for an LSTMCell must be a tuple (h, c), got {type(hx).__name__}")
        states = list(hx) if self._cell == "lstm" else [hx]
        expected = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        for name, state in zip(("h", "c"), states, strict=False):
            if not isinstance(state, torch.Tensor):
                raise TypeError(f"hx ({name}) must be a torch.Tensor, got {type(state).__name__}")
            if tuple(state.shape) != expected:
                raise ValueError(f"hx ({name}) must have shape {expected}, got {tuple(state.shape)}")
            check_like(f"hx ({name})", state, "the input", x)
        return [s.unsqueeze(0) if unbatched else s for s in states]


class LSTMCell(_Cell, nn.LSTMCell):
    """torch.nn.LSTMCell with a ``backend`` switch: ``LSTMCell(input_size, hidden_size, bias=True, *,
    backend="auto")``."""

    _cell = "lstm"


class GRUCell(_Cell, nn.GRUCell):
    """torch.nn.GRUCell with a ``backend`` switch: ``GRUCell(input_size, hidden_size, bias=True, *,
    backend="auto")``."""

    _cell = "gru"


class RNNCell(_Cell, nn.RNNCell):
    """torch.nn.RNNCell with ``nonlinearity`` tanh, relu or sigmoid and a ``backend`` switch."""

    _cell = "rnn"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
    ) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        # torch.nn knows tanh and relu; a sigmoid cell has the parameters of a tanh one. (nn.RNNCell directly:
        # _Cell's constructor is the LSTMCell/GRUCell one, without nonlinearity.)
        base = "tanh" if nonlinearity == "sigmoid" else nonlinearity
        nn.RNNCell.__init__(self, input_size, hidden_size, bias, base, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity
        self.backend = backend
