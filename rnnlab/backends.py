"""Which implementation runs a layer: the backend names, where each can run, and "auto".

- ``reference``: the pure-PyTorch recurrences of ``rnnlab.reference``; any device, any dtype.
- ``triton``: the fused kernels of ``rnnlab.kernels``; a CUDA device (or Triton's CPU interpreter, with
  ``TRITON_INTERPRET=1``) and the ``triton`` package.
- ``cudnn``: torch.nn's own implementation (cuDNN on a GPU, ATen/oneDNN on the CPU): the baseline.
- ``auto``: triton on CUDA where the kernels support the configuration, otherwise reference.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

BACKENDS = ("auto", "reference", "triton", "cudnn")


def check_backend_name(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def _kernels() -> ModuleType | None:
    """rnnlab.kernels if it imports (triton installed), else None."""
    try:
        return importlib.import_module("rnnlab.kernels")
    except ImportError:
        return None


def triton_available() -> bool:
    kernels = _kernels()
    return kernels is not None and kernels.available()


def resolve(
    backend: str, cell: str, hidden_size: int, dtype: torch.dtype, device: torch.device, nonlinearity: str
) -> str:
    """The concrete backend ("reference", "triton" or "cudnn") for one call, or a ValueError saying which
    backends can run here instead."""
    if backend == "auto":
        kernels = _kernels()
        if (
            device.type == "cuda"
            and kernels is not None
            and kernels.available()
            and kernels.supports(cell, hidden_size, dtype, device)
        ):
            return "triton"
        return "reference"
    if backend == "triton" and not triton_available():
        raise ValueError(
            "backend 'triton' cannot run here: it needs the triton package and a CUDA device "
            "(or TRITON_INTERPRET=1 for Triton's CPU interpreter). Backends that can: 'reference', 'cudnn'."
        )
    if backend == "triton" and device.type not in ("cuda", "cpu"):
        raise ValueError(
            f"backend 'triton' cannot run on device {device}; backends that can: 'reference', 'cudnn'."
        )
    if backend == "cudnn" and nonlinearity == "sigmoid":
        raise ValueError(
            "backend 'cudnn' (torch.nn) has no sigmoid RNN; backends that can run nonlinearity='sigmoid': "
            "'reference', 'triton'."
        )
    return backend


def recurrences(backend: str) -> ModuleType:
    """The module holding lstm_recurrence / gru_recurrence / rnn_recurrence for a concrete backend."""
    if backend == "triton":
        return importlib.import_module("rnnlab.kernels")
    return importlib.import_module("rnnlab.reference")


class BackendSwitch:
    """Mixin for modules with a ``backend`` attribute, checked when it is assigned."""

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_backend_name(value)
