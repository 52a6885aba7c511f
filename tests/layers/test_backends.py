"""The backend switch: names checked on assignment, switchable after construction, clear refusals."""

import pytest
import torch

import rnnlab
from rnnlab import backends


def test_backend_is_switchable_after_construction_and_all_agree():
    layer = rnnlab.LSTM(3, 4, num_layers=2)
    assert layer.backend == "auto"
    x = torch.randn(5, 2, 3)
    results = {}
    for name in ("auto", "reference", "cudnn"):
        layer.backend = name
        results[name] = layer(x)[0]
    assert torch.allclose(results["auto"], results["reference"], atol=1e-6)
    assert torch.allclose(results["cudnn"], results["reference"], atol=1e-6)


def test_auto_on_cpu_is_reference():
    assert backends.resolve("auto", "lstm", 8, torch.float32, torch.device("cpu"), "") == "reference"


def test_unknown_backend_name_is_refused_on_construction_and_assignment():
    with pytest.raises(ValueError, match="backend must be one of"):
        rnnlab.GRU(3, 4, backend="cuda")
    layer = rnnlab.GRU(3, 4)
    with pytest.raises(ValueError, match="backend must be one of"):
        layer.backend = "fast"
    assert layer.backend == "auto"


def test_triton_without_triton_says_which_backends_can_run(monkeypatch):
    monkeypatch.setitem(backends._cache, "available", False)
    layer = rnnlab.LSTM(3, 4, backend="triton")
    with pytest.raises(ValueError, match=r"cannot run here.*'reference', 'cudnn'"):
        layer(torch.randn(2, 1, 3))


def test_triton_too_old_says_so(monkeypatch):
    from rnnlab.kernels import common

    monkeypatch.setitem(backends._cache, "available", False)
    monkeypatch.setattr(common, "triton_problem", lambda: "triton 3.2.0 is too old: the kernels need 3.3")
    layer = rnnlab.GRU(3, 4, backend="triton")
    with pytest.raises(ValueError, match=r"cannot run here: triton 3.2.0 is too old.*'reference', 'cudnn'"):
        layer(torch.randn(2, 1, 3))


def test_sigmoid_on_cudnn_names_the_backends_that_can():
    layer = rnnlab.RNN(3, 4, nonlinearity="sigmoid", backend="cudnn")
    with pytest.raises(ValueError, match=r"no sigmoid RNN.*'reference', 'triton'"):
        layer(torch.randn(2, 1, 3))


def test_repr_shows_backend():
    assert "backend='cudnn'" in repr(rnnlab.GRU(3, 4, backend="cudnn"))
