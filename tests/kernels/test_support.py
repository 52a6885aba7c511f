"""``supports``: may backend="auto" pick the fused path; ``available``: can the kernels run at all."""

import importlib
import sys

import pytest
import torch

from rnnlab import kernels

CUDA = torch.device("cuda")


def test_package_exports_exactly_the_public_functions():
    assert sorted(kernels.__all__) == [
        "available",
        "gru_recurrence",
        "lstm_recurrence",
        "rnn_recurrence",
        "supports",
    ]
    for name in kernels.__all__:
        assert callable(getattr(kernels, name))


def test_available_under_the_interpreter_or_cuda():
    assert kernels.available() == (torch.cuda.is_available() or kernels.common.interpreted())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "LSTM"])
@pytest.mark.parametrize("hidden", [1, 5, 64, 127, 768, 2048])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_supports_every_hidden_size_and_dtype_on_cuda(cell, hidden, dtype):
    assert kernels.supports(cell, hidden, dtype, CUDA) == torch.cuda.is_available()


@pytest.mark.parametrize(
    "cell, hidden, dtype",
    [
        ("mgu", 64, torch.float32),
        ("lstm", 0, torch.float32),
        ("gru", 64, torch.float64),
        ("rnn", 10**6, torch.float32),
    ],
)
def test_unsupported_configurations(cell, hidden, dtype):
    assert not kernels.supports(cell, hidden, dtype, CUDA)


def test_never_auto_selected_on_cpu():
    """The interpreter runs the kernels on the CPU, but far too slowly to be an automatic choice."""
    assert not kernels.supports("lstm", 32, torch.float32, torch.device("cpu"))
    assert not kernels.supports("lstm", 32, torch.float32, "cpu")


def test_package_imports_without_triton(monkeypatch):
    """Importing rnnlab.kernels (and asking supports/available) must not need Triton."""
    import rnnlab

    monkeypatch.setattr(rnnlab, "kernels", rnnlab.kernels)  # restored afterwards, like sys.modules
    for name in [
        m for m in sys.modules if m == "triton" or m.startswith("triton.") or m.startswith("rnnlab.kernels")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton -> ImportError
    fresh = importlib.import_module("rnnlab.kernels")
    fresh.common._triton_importable.cache_clear()
    assert not fresh.available()
    assert not fresh.supports("lstm", 32, torch.float32, CUDA)
