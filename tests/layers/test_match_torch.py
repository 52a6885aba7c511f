"""rnnlab layers load torch.nn's state_dict and give torch.nn's outputs, states and gradients (fp32, 1e-5
relative), for every combination of num_layers, bidirectional, batch_first and initial states."""

import itertools

import pytest
import torch
from helpers import assert_relative_close, flatten_states
from torch import nn

import rnnlab

CELLS = {
    "lstm": (nn.LSTM, rnnlab.LSTM, {}),
    "gru": (nn.GRU, rnnlab.GRU, {}),
    "rnn_tanh": (nn.RNN, rnnlab.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, rnnlab.RNN, {"nonlinearity": "relu"}),
}
COMBOS = list(itertools.product([1, 2], [False, True], [False, True], [False, True]))


def _pair(cell, layers, bidirectional, batch_first, backend="reference", input_size=5, hidden=7):
    torch_cls, rnnlab_cls, extra = CELLS[cell]
    kwargs = dict(num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, **extra)
    expected = torch_cls(input_size, hidden, **kwargs)
    layer = rnnlab_cls(input_size, hidden, backend=backend, **kwargs)
    layer.load_state_dict(expected.state_dict())
    return expected, layer


def _initial(cell, layers, directions, batch, hidden):
    h0 = torch.randn(layers * directions, batch, hidden)
    return (h0, torch.randn_like(h0)) if cell == "lstm" else h0


@pytest.mark.parametrize("backend", ["reference", "cudnn"])
@pytest.mark.parametrize(
    "layers,bidirectional,batch_first,with_state",
    COMBOS,
    ids=[
        f"L{a}-{'bi' if b else 'uni'}-{'bf' if c else 'tm'}-{'h0' if d else 'noh0'}" for a, b, c, d in COMBOS
    ],
)
@pytest.mark.parametrize("cell", list(CELLS))
def test_outputs_states_and_gradients_match_torch_nn(
    cell, layers, bidirectional, batch_first, with_state, backend
):
    steps, batch, hidden = 6, 3, 7
    expected_layer, layer = _pair(cell, layers, bidirectional, batch_first, backend)
    x = torch.randn(batch, steps, 5) if batch_first else torch.randn(steps, batch, 5)
    hx = _initial(cell, layers, 2 if bidirectional else 1, batch, hidden) if with_state else None

    def run(module):
        inp = x.clone().requires_grad_()
        states = None if hx is None else tuple(s.clone().requires_grad_() for s in flatten_states(hx))
        out, state = module(inp, None if states is None else (states if cell == "lstm" else states[0]))
        weights = torch.randn_like(out)
        loss = (out * weights).sum() + sum((s * s).sum() for s in flatten_states(state))
        loss.backward()
        grads = [inp.grad] + ([s.grad for s in states] if states else [])
        return out, flatten_states(state), grads, {n: p.grad for n, p in module.named_parameters()}

    torch.manual_seed(1)
    out_e, state_e, grads_e, pgrads_e = run(expected_layer)
    torch.manual_seed(1)
    out, state, grads, pgrads = run(layer)
    assert_relative_close(out, out_e, 1e-5, "output")
    for s, s_e in zip(state, state_e, strict=True):
        assert_relative_close(s, s_e, 1e-5, "final state")
    for g, g_e in zip(grads, grads_e, strict=True):
        assert_relative_close(g, g_e, 1e-5, "input/state gradient")
    assert pgrads.keys() == pgrads_e.keys()
    for name in pgrads:
        assert_relative_close(pgrads[name], pgrads_e[name], 1e-5, f"grad of {name}")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_unbatched_input_matches_torch_nn(cell):
    expected_layer, layer = _pair(cell, 2, True, False)
    x = torch.randn(4, 5)
    out_e, state_e = expected_layer(x)
    out, state = layer(x)
    assert out.shape == out_e.shape
    assert_relative_close(out, out_e, 1e-5, "output")
    for s, s_e in zip(flatten_states(state), flatten_states(state_e), strict=True):
        assert s.shape == s_e.shape
        assert_relative_close(s, s_e, 1e-5, "final state")


def test_state_dict_round_trips_and_layer_is_a_torch_nn_rnn_module():
    layer = rnnlab.LSTM(5, 7, num_layers=2, bidirectional=True)
    assert isinstance(layer, nn.RNNBase)
    reference = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    assert layer.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert layer.state_dict()[key].shape == value.shape
    reference.load_state_dict(layer.state_dict())


def test_sigmoid_rnn_follows_its_definition():
    layer = rnnlab.RNN(3, 4, nonlinearity="sigmoid")
    x = torch.randn(5, 2, 3)
    out, h_n = layer(x)
    h = torch.zeros(2, 4)
    for t in range(5):
        h = torch.sigmoid(
            x[t] @ layer.weight_ih_l0.T + layer.bias_ih_l0 + h @ layer.weight_hh_l0.T + layer.bias_hh_l0
        )
        assert_relative_close(out[t], h, 1e-6, f"step {t}")
    assert_relative_close(h_n[0], h, 1e-6, "h_n")
