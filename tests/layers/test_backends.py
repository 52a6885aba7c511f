"""The backend switch: names checked on assignment, switchable after construction, clear refusals."""

import warnings

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


def test_auto_on_a_gpu_without_the_kernels_warns_once_per_reason(monkeypatch):
    """auto takes the reference path on a GPU where the kernels cannot run at all (Triton too old, an AMD
    GPU): many times slower than cuDNN there, so it says so, once per reason. Not for a configuration the
    kernels do not take (float64), nor on the CPU."""
    from rnnlab.kernels import common

    cuda = torch.device("cuda")
    monkeypatch.setattr(backends, "_warned", set())
    monkeypatch.setitem(backends._cache, "available", False)
    monkeypatch.setattr(common, "triton_problem", lambda: "triton 3.2.0 is too old")
    monkeypatch.setattr(torch.version, "hip", None)
    said = r"reference recurrence on cuda because triton 3.2.0 is too old.*'cudnn'"
    with pytest.warns(RuntimeWarning, match=said):
        assert backends.resolve("auto", "lstm", 8, torch.float32, cuda, "") == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert backends.resolve("auto", "gru", 8, torch.float32, cuda, "") == "reference"  # said already
        assert backends.resolve("auto", "gru", 8, torch.float32, torch.device("cpu"), "") == "reference"
    monkeypatch.setitem(backends._cache, "available", True)
    monkeypatch.setattr(common, "triton_problem", lambda: None)
    monkeypatch.setattr(torch.version, "hip", "6.4.0")
    with pytest.warns(RuntimeWarning, match="ROCm build of torch"):
        assert backends.resolve("auto", "rnn", 8, torch.float32, cuda, "tanh") == "reference"
    monkeypatch.setattr(torch.version, "hip", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # kernels usable, float64 not among their dtypes: no warning
        assert backends.resolve("auto", "lstm", 8, torch.float64, cuda, "") == "reference"


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
