"""rnnlab.RNN, rnnlab.LSTM, rnnlab.GRU: drop-in replacements for their torch.nn namesakes.

Each is built by torch.nn's ``RNNBase`` exactly as its torch.nn namesake is, so constructor arguments,
parameter names and shapes, gate order, initialisation and ``state_dict`` are torch.nn's own, and the cudnn
backend runs torch.nn's own forward on it. They subclass ``RNNBase`` rather than ``nn.LSTM``/``GRU``/``RNN``
because torch.compile refuses any instance of those three classes; so ``isinstance(layer, nn.LSTM)`` is
False (``isinstance(layer, nn.RNNBase)`` is True). What is added:

- ``backend``: "auto" (default), "reference", "triton" or "cudnn" (see ``rnnlab.backends``); an attribute,
  switchable after construction.
- ``forward(input, hx=None, lengths=None)``: a padded batch with a (B,) ``lengths`` tensor is accepted as well
  as a PackedSequence. Past each sequence's length the state stops changing and the output is zero, as with
  pack_padded_sequence, without packing.
- ``single_bias=True``: one bias per gate (as Keras counts), instead of torch.nn's b_ih + b_hh. The bias
  lives in ``bias_ih_l{k}``; ``bias_hh_l{k}`` becomes a zero buffer that is not saved or trained.
- ``RNN(nonlinearity="sigmoid")`` besides "tanh" and "relu" (not on the cudnn backend).
- T = 0 (an empty sequence) returns an empty output and the initial states unchanged, on every backend.

Example::

    lstm = rnnlab.LSTM(64, 128, num_layers=2, batch_first=True)
    out, (h_n, c_n) = lstm(x, lengths=lengths)       # x: (B, T, 64), lengths: (B,)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import backends, streams
from .kernels import launch
from .kernels.common import GATES
from .reference import NONLINEARITIES
from .validation import check_input, check_lengths, check_state


class _RecurrentLayer(backends.BackendSwitch):
    """The behaviour shared by RNN, LSTM and GRU; mixed in before the torch.nn class."""

    _cell: str  # "lstm" | "gru" | "rnn"
    _torch_nn: type  # the torch.nn class whose forward the cudnn backend runs on this module

    def _setup_rnnlab(self, backend: str, single_bias: bool) -> None:
        self.backend = backend
        self.single_bias = single_bias
        if single_bias:
            if not self.bias:
                raise ValueError(
                    "single_bias=True needs bias=True (it keeps one bias per gate instead of two)"
                )
            for name in [n for n in self._flat_weights_names if n.startswith("bias_hh")]:
                zeros = torch.zeros_like(getattr(self, name), requires_grad=False)
                delattr(self, name)
                self.register_buffer(name, zeros, persistent=False)
            self._init_flat_weights()

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self._cell == "rnn" and self.nonlinearity == "sigmoid":
            text += ", nonlinearity=sigmoid"
        if self.single_bias:
            text += ", single_bias=True"
        return text + f", backend={self.backend!r}"

    # -- forward --------------------------------------------------------------------------------------
    def forward(self, input, hx=None, lengths=None):  # noqa: A002 - torch.nn's argument name
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths must be None when input is a PackedSequence (it carries its own)")
            return self._forward_packed(input, hx)
        weight = self.weight_ih_l0
        check_input(input, self.input_size, weight, self.batch_first)
        unbatched = input.dim() == 2
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths is for batched input; unbatched 2-D input is one whole sequence")
            input = input.unsqueeze(1 if not self.batch_first else 0)
        x = input.transpose(0, 1) if self.batch_first else input  # (T, B, I)
        steps, batch = x.shape[0], x.shape[1]
        h0, c0 = self._initial_states(hx, x, unbatched)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps)
        backend = backends.resolve(
            self.backend, self._cell, self.hidden_size, x.dtype, x.device, getattr(self, "nonlinearity", "")
        )
        if steps == 0:  # empty, but in x's graph (a loss over it backpropagates), and copies of the states
            out = x[..., :1].expand(0, batch, self._directions * self.hidden_size).clone()
            h_n, c_n = h0.clone(), (None if c0 is None else c0.clone())
        elif backend == "cudnn":
            out, h_n, c_n = self._run_torch_nn(x, h0, c0, lengths)
        else:
            concurrent = backend == "triton" and self.bidirectional and streams.enabled(x.device)
            together = backend == "triton" and not concurrent  # (bidirectional layers: one call)
            impl = backends.recurrences(backend)
            out, h_n, c_n = self._run_stack(impl, x, h0, c0, lengths, concurrent, together)
        if self.batch_first:
            out = out.transpose(0, 1)
        if unbatched:
            out, h_n = out.squeeze(1 if not self.batch_first else 0), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return out, ((h_n, c_n) if self._cell == "lstm" else h_n)

    @property
    def _directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _initial_states(self, hx, x, unbatched):
        """(L*D, B, H) h0 (and c0 for LSTM), zeros when hx is None."""
        expected = (self.num_layers * self._directions, x.shape[1], self.hidden_size)
        shown = expected[:1] + expected[2:] if unbatched else expected
        if hx is None:
            # two tensors, not one twice: at T = 0 they come back as h_n and c_n, which must not alias
            return x.new_zeros(expected), (x.new_zeros(expected) if self._cell == "lstm" else None)
        if self._cell == "lstm":
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError("hx for an LSTM must be a tuple (h0, c0)")
            states = hx
        else:
            if isinstance(hx, tuple | list):
                raise TypeError(f"hx for a {type(self).__name__} must be a tensor h0, not a tuple")
            states = (hx,)
        for name, state in zip(("h0", "c0"), states, strict=False):
            check_state(name, state, shown, x, unbatched)
        states = [s.unsqueeze(1) if unbatched else s for s in states]
        return states[0], (states[1] if self._cell == "lstm" else None)

    def _weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        w_ih = getattr(self, "weight_ih" + suffix)
        w_hh = getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        return w_ih, w_hh, b_ih, b_hh

    def _run_stack(self, impl, x, h0, c0, lengths, concurrent=False, together=False):
        """Layers and directions on one of the recurrence implementations. x: (T, B, I) time-major.
        ``concurrent``: a bidirectional layer's two directions on two CUDA streams (``rnnlab.streams``);
        ``together``: in one call of the recurrence, stacked (``_run_both_directions``), where the kernels
        run that in one launch (``launch.both_directions_at_once``)."""
        dtype = backends.compute_dtype(x)
        layer_input = x.to(dtype)
        # every layer has the same hidden size and dtype: one answer for all of them
        together = (
            together
            and self.bidirectional
            and launch.both_directions_at_once(GATES[self._cell], self.hidden_size, dtype)
        )
        h_n, c_n = [], []  # chunks (directions, B, H) of the final states, layer by layer
        for layer in range(self.num_layers):
            if together:
                out, h_last, c_last = self._run_both_directions(
                    impl, layer, layer_input, h0, c0, lengths, dtype
                )
                # (2, T, B, H) -> (T, B, 2H): one copy, as the cat below. Not through out[0] and out[1]:
                # autograd would build each slice's gradient as a zero-filled (2, T, B, H) tensor.
                layer_input = out.permute(1, 2, 0, 3).reshape(*out.shape[1:3], -1)
                h_n.append(h_last)
                c_n += [] if c_last is None else [c_last]
            else:
                runs = [
                    (impl, layer, d, layer_input, h0, c0, lengths, dtype) for d in range(self._directions)
                ]
                if concurrent and len(runs) == 2:
                    results = streams.side_by_side(self._run_direction, self._run_direction, *runs)
                else:
                    results = [self._run_direction(*run) for run in runs]
                for _, h_last, c_last in results:
                    h_n.append(h_last.unsqueeze(0))
                    c_n += [] if c_last is None else [c_last.unsqueeze(0)]
                outputs = [out for out, _, _ in results]
                layer_input = torch.cat(outputs, dim=2) if len(outputs) > 1 else outputs[0]  # (T, B, D*H)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, _stack(h_n), (_stack(c_n) if c_n else None)

    def _run_direction(self, impl, layer, direction, layer_input, h0, c0, lengths, dtype):
        """One direction of one layer: (out (T, B, H), h_last, c_last or None)."""
        index = layer * self._directions + direction
        w_ih, w_hh, b_ih, b_hh = (None if w is None else w.to(dtype) for w in self._weights(layer, direction))
        reverse = bool(direction)
        h_init = h0[index].to(dtype)
        if self._cell == "gru":  # gx is this call's own: the kernels may write the saved gates over it
            gx = impl.project_inputs(layer_input, w_ih, b_ih)  # (T, B, 3H), one GEMM for all steps
            out, h_last = impl.gru_recurrence(gx, w_hh, b_hh, h_init, lengths, reverse, overwrite_gx=True)
            return out, h_last, None
        bias = None if b_ih is None else b_ih + b_hh
        gx = impl.project_inputs(layer_input, w_ih, bias)  # (T, B, G*H), one GEMM for all steps
        if self._cell == "lstm":  # gx is this call's own: the kernels may write the saved gates over it
            c_init = c0[index].to(dtype)
            return impl.lstm_recurrence(gx, w_hh, h_init, c_init, lengths, reverse, overwrite_gx=True)
        out, h_last = impl.rnn_recurrence(gx, w_hh, h_init, lengths, reverse, self.nonlinearity)
        return out, h_last, None

    def _run_both_directions(self, impl, layer, layer_input, h0, c0, lengths, dtype):
        """Both directions of one layer in one call of the fused recurrence, their inputs stacked on a
        leading axis (``rnnlab.kernels``: one launch where its plan allows, ``launch.bidir_launch``):
        out (2, T, B, H), h_last (2, B, H), c_last (2, B, H) or None."""
        weights = [[None if w is None else w.to(dtype) for w in self._weights(layer, d)] for d in (0, 1)]
        first = 2 * layer  # this layer's two directions in h0 / c0
        h_init = h0[first : first + 2].to(dtype)
        w_hh = torch.stack([w[1] for w in weights])
        w_ih = [w[0] for w in weights]
        if self._cell == "gru":  # gx is this call's own: the kernels may write the saved gates over it
            gx = impl.project_both_directions(layer_input, w_ih, [w[2] for w in weights])  # (2, T, B, 3H)
            b_hh = None if weights[0][3] is None else torch.stack([w[3] for w in weights])
            return (*impl.gru_recurrence(gx, w_hh, b_hh, h_init, lengths, overwrite_gx=True), None)
        biases = [None if w[2] is None else w[2] + w[3] for w in weights]
        gx = impl.project_both_directions(layer_input, w_ih, biases)  # (2, T, B, G*H), one buffer
        if self._cell == "lstm":
            c_init = c0[first : first + 2].to(dtype)
            return impl.lstm_recurrence(gx, w_hh, h_init, c_init, lengths, overwrite_gx=True)
        return (*impl.rnn_recurrence(gx, w_hh, h_init, lengths, False, self.nonlinearity), None)

    def _run_torch_nn(self, x, h0, c0, lengths):
        """torch.nn's own implementation, time-major in and out; lengths go through a PackedSequence."""
        hx = (h0, c0) if self._cell == "lstm" else h0
        batch_first, self.batch_first = self.batch_first, False
        try:
            if lengths is None:
                out, state = self._torch_nn.forward(self, x, hx)
            else:
                packed = pack_padded_sequence(x, lengths.cpu(), enforce_sorted=False)
                packed_out, state = self._torch_nn.forward(self, packed, hx)
                out, _ = pad_packed_sequence(packed_out, total_length=x.shape[0])
        finally:
            self.batch_first = batch_first
        if self._cell == "lstm":
            return out, state[0], state[1]
        return out, state, None

    def _forward_packed(self, packed: PackedSequence, hx):
        """A PackedSequence runs as a padded batch with lengths, in the caller's batch order, and is packed
        back with the input's own batch_sizes and sorting, as torch.nn returns it."""
        padded, lengths = pad_packed_sequence(packed)  # (T, B, I), original batch order
        batch_first, self.batch_first = self.batch_first, False
        try:
            out, state = self.forward(padded, hx, lengths=lengths)
        finally:
            self.batch_first = batch_first
        order = packed.sorted_indices
        if order is not None:
            out, lengths = out.index_select(1, order), lengths[order.cpu()]
        data = pack_padded_sequence(out, lengths, enforce_sorted=True).data
        return PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices), state


def _stack(chunks: list[torch.Tensor]) -> torch.Tensor:
    """(L*D, B, H) from the final states in chunks (1 or 2, B, H), layer by layer: a single chunk itself
    (no copy: a view of a one-direction layer's state), else one ``cat``."""
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


class LSTM(_RecurrentLayer, nn.RNNBase):
    """torch.nn.LSTM with a ``backend`` switch, ``lengths``, and ``single_bias``. See the module docstring."""

    _cell, _torch_nn = "lstm", nn.LSTM
    # torch.nn.LSTM's own checks, which its forward (the cudnn backend) calls on the module
    get_expected_cell_size = nn.LSTM.get_expected_cell_size
    check_forward_args = nn.LSTM.check_forward_args
    permute_hidden = nn.LSTM.permute_hidden

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        single_bias: bool = False,
    ) -> None:
        if proj_size:
            raise ValueError("proj_size is not supported by rnnlab.LSTM; use torch.nn.LSTM for projections")
        args = (input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        super().__init__("LSTM", *args, device=device, dtype=dtype)
        self._setup_rnnlab(backend, single_bias)


class GRU(_RecurrentLayer, nn.RNNBase):
    """torch.nn.GRU with a ``backend`` switch, ``lengths``, and ``single_bias``. See the module docstring."""

    _cell, _torch_nn = "gru", nn.GRU

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        single_bias: bool = False,
    ) -> None:
        args = (input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        super().__init__("GRU", *args, device=device, dtype=dtype)
        self._setup_rnnlab(backend, single_bias)


class RNN(_RecurrentLayer, nn.RNNBase):
    """torch.nn.RNN with ``nonlinearity`` tanh, relu or sigmoid, a ``backend`` switch, ``lengths`` and
    ``single_bias``. See the module docstring."""

    _cell, _torch_nn = "rnn", nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        backend: str = "auto",
        single_bias: bool = False,
    ) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
        # torch.nn knows tanh and relu (its modes); a sigmoid RNN has the parameters of a tanh one.
        mode = "RNN_RELU" if nonlinearity == "relu" else "RNN_TANH"
        args = (input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)
        super().__init__(mode, *args, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity
        self._setup_rnnlab(backend, single_bias)
