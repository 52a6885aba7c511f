"""One bias per gate (Keras's count) instead of torch.nn's two."""

import pytest
import torch
from helpers import assert_relative_close
from torch import nn

import rnnlab


def test_article_model_has_164106_parameters():
    # Embedding(1000, 64) -> LSTM(128) -> Dense(10), as the article's model summary counts it.
    model = nn.Sequential(nn.Embedding(1000, 64), rnnlab.LSTM(64, 128, single_bias=True))
    head = nn.Linear(128, 10)
    total = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in head.parameters())
    assert total == 164_106
    assert sum(p.numel() for p in model[1].parameters()) == 4 * 128 * (64 + 128) + 4 * 128


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_single_bias_state_dict_has_one_bias_per_layer_and_direction(cls):
    layer = cls(3, 5, num_layers=2, bidirectional=True, single_bias=True)
    keys = set(layer.state_dict())
    assert {k for k in keys if k.startswith("bias")} == {
        "bias_ih_l0",
        "bias_ih_l0_reverse",
        "bias_ih_l1",
        "bias_ih_l1_reverse",
    }
    assert not any(k.startswith("bias_hh") for k, _ in layer.named_parameters())


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_single_bias_equals_torch_nn_with_zero_hidden_bias(cls):
    layer = cls(3, 5, bidirectional=True, single_bias=True)
    expected = getattr(nn, cls.__name__)(3, 5, bidirectional=True)
    state = dict(layer.state_dict())
    state.update({k: torch.zeros_like(v) for k, v in expected.state_dict().items() if "bias_hh" in k})
    expected.load_state_dict(state)
    x = torch.randn(4, 2, 3)
    for backend in ("reference", "cudnn"):
        layer.backend = backend
        out, _ = layer(x)
        assert_relative_close(out, expected(x)[0], 1e-5, backend)
    out.sum().backward()
    assert layer.bias_ih_l0.grad is not None


def test_single_bias_needs_bias():
    with pytest.raises(ValueError, match="single_bias=True needs bias=True"):
        rnnlab.LSTM(3, 5, bias=False, single_bias=True)
