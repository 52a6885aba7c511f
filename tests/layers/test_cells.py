"""Cells match torch.nn's cells, and a cell stepped T times matches the layer."""

import pytest
import torch
from helpers import assert_relative_close, flatten_states
from torch import nn

import rnnlab

PAIRS = {
    "lstm": (nn.LSTMCell, rnnlab.LSTMCell, rnnlab.LSTM, {}),
    "gru": (nn.GRUCell, rnnlab.GRUCell, rnnlab.GRU, {}),
    "rnn_tanh": (nn.RNNCell, rnnlab.RNNCell, rnnlab.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNNCell, rnnlab.RNNCell, rnnlab.RNN, {"nonlinearity": "relu"}),
}


@pytest.mark.parametrize("backend", ["reference", "cudnn"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("cell", list(PAIRS))
def test_cell_matches_torch_nn_cell(cell, batched, backend):
    torch_cls, cls, _, extra = PAIRS[cell]
    expected, module = torch_cls(5, 7, **extra), cls(5, 7, backend=backend, **extra)
    module.load_state_dict(expected.state_dict())
    x = torch.randn(3, 5) if batched else torch.randn(5)
    h = torch.randn(3, 7) if batched else torch.randn(7)
    hx = (h, torch.randn_like(h)) if cell == "lstm" else h
    for state in (None, hx):
        x_e, x_r = x.clone().requires_grad_(), x.clone().requires_grad_()
        out_e = flatten_states(expected(x_e, state))
        out = flatten_states(module(x_r, state))
        for o, o_e in zip(out, out_e, strict=True):
            assert o.shape == o_e.shape
            assert_relative_close(o, o_e, 1e-5, "cell output")
        sum(o.sum() for o in out_e).backward()
        sum(o.sum() for o in out).backward()
        assert_relative_close(x_r.grad, x_e.grad, 1e-5, "input gradient")


@pytest.mark.parametrize("cell", list(PAIRS))
def test_cell_stepped_matches_layer(cell):
    _, cls, layer_cls, extra = PAIRS[cell]
    layer = layer_cls(5, 7, **extra)
    module = cls(5, 7, **extra)
    module.load_state_dict({k[: -len("_l0")]: v for k, v in layer.state_dict().items()})
    x = torch.randn(6, 2, 5)
    out, _ = layer(x)
    state = None
    for t in range(6):
        state = module(x[t], state)
        assert_relative_close(flatten_states(state)[0], out[t], 1e-5, f"step {t}")


def test_sigmoid_cell():
    module = rnnlab.RNNCell(3, 4, nonlinearity="sigmoid")
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    expected = torch.sigmoid(
        x @ module.weight_ih.T + module.bias_ih + h @ module.weight_hh.T + module.bias_hh
    )
    assert_relative_close(module(x, h), expected, 1e-6, "sigmoid cell")


@pytest.mark.parametrize("with_state", [False, True], ids=["no-hx", "hx"])
@pytest.mark.parametrize("cell", list(PAIRS))
def test_cell_under_autocast(cell, with_state):
    """Under torch.autocast (CPU, bf16) a reference cell runs in autocast's dtype, as the layers do, and
    stays within bf16's rounding of torch.nn's fp32 cell; its gradients reach the fp32 parameters."""
    torch_cls, cls, _, extra = PAIRS[cell]
    expected, module = torch_cls(5, 7, **extra), cls(5, 7, backend="reference", **extra)
    module.load_state_dict(expected.state_dict())
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    hx = ((h, torch.randn_like(h)) if cell == "lstm" else h) if with_state else None
    want = flatten_states(expected(x, hx))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = flatten_states(module(x, hx))
    for o, o_e in zip(got, want, strict=True):
        assert o.dtype == torch.bfloat16
        torch.testing.assert_close(o.float(), o_e, rtol=3e-2, atol=3e-2)
    sum(o.float().sum() for o in got).backward()
    assert module.weight_hh.grad is not None and module.weight_hh.grad.dtype == torch.float32
