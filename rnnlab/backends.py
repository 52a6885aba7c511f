"""Which implementation runs a layer: the backend names, where each can run, and "auto".

- ``reference``: the pure-PyTorch recurrences of ``rnnlab.reference``; any device, any dtype.
- ``triton``: the fused kernels of ``rnnlab.kernels``; a CUDA device (or Triton's CPU interpreter, with
  ``TRITON_INTERPRET=1``) and the ``triton`` package.
- ``cudnn``: torch.nn's own implementation (cuDNN on a GPU, ATen/oneDNN on the CPU): the baseline.
- ``auto``: triton on CUDA where the kernels support the configuration, otherwise reference.

Everything a layer's forward asks here is plain Python over cached values, so torch.compile traces it
without a graph break. The one slow step, importing Triton and the kernel modules, happens eagerly when a
layer is set to a backend that may need it (``warm``), not inside a compiled forward.
"""

from __future__ import annotations

import importlib
import warnings
from types import SimpleNamespace

import torch

from . import kernels, reference
from .reference.matmul import project_inputs

BACKENDS = ("auto", "reference", "triton", "cudnn")

_REFERENCE = SimpleNamespace(
    project_inputs=project_inputs,
    lstm_recurrence=reference.lstm_recurrence,
    gru_recurrence=reference.gru_recurrence,
    rnn_recurrence=reference.rnn_recurrence,
)
_cache: dict[str, object] = {}  # "available": bool, "triton": SimpleNamespace of the kernel functions
_warned: set[str] = set()  # the reasons ``_warn_no_kernels`` has given


def check_backend_name(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


def triton_available() -> bool:
    if "available" not in _cache:
        _cache["available"] = kernels.available()
    return _cache["available"]


def warm(backend: str) -> None:
    """Import what ``backend`` will need (Triton and the kernel modules), outside any compiled region."""
    may_need = backend == "triton" or (backend == "auto" and torch.cuda.is_available())
    if may_need and triton_available() and "triton" not in _cache:
        projection = importlib.import_module("rnnlab.kernels.projection")
        functions = {
            "project_inputs": projection.project_inputs,
            "project_both_directions": projection.project_both_directions,
        }
        for cell in ("lstm", "gru", "rnn"):
            module = importlib.import_module(f"rnnlab.kernels.{cell}")
            functions[f"{cell}_recurrence"] = getattr(module, f"{cell}_recurrence")
        _cache["triton"] = SimpleNamespace(**functions)


def resolve(
    backend: str, cell: str, hidden_size: int, dtype: torch.dtype, device: torch.device, nonlinearity: str
) -> str:
    """The concrete backend ("reference", "triton" or "cudnn") for one call, or a ValueError saying which
    backends can run here instead."""
    if backend == "auto":
        if (
            device.type == "cuda"
            and triton_available()
            and kernels.supports(cell, hidden_size, dtype, device)
        ):
            return "triton"
        if device.type == "cuda":
            _warn_no_kernels(device)
        return "reference"
    if backend == "triton" and not triton_available():
        problem = kernels.common.triton_problem()
        needs = problem or "it needs a CUDA device (or TRITON_INTERPRET=1 for Triton's CPU interpreter)"
        raise ValueError(
            f"backend 'triton' cannot run here: {needs}. Backends that can: 'reference', 'cudnn'."
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


def _warn_no_kernels(device: torch.device) -> None:
    """Say once per reason (not inside torch.compile's tracing) that "auto" on a GPU takes the reference
    path because the fused kernels cannot run here at all: the reference path's time loop is many times
    slower there than torch.nn's cuDNN. A configuration the kernels do not take (float64, H beyond
    MAX_HIDDEN) is the caller's choice and is not warned about."""
    reason = kernels.common.gpu_problem()
    if reason is None or reason in _warned or torch.compiler.is_compiling():
        return
    _warned.add(reason)
    warnings.warn(
        f"backend='auto' runs rnnlab's pure-PyTorch reference recurrence on {device} because {reason}; "
        "backend='cudnn' (torch.nn's own) is much faster there.",
        RuntimeWarning,
        stacklevel=4,
    )


def recurrences(backend: str) -> SimpleNamespace:
    """project_inputs and lstm_recurrence / gru_recurrence / rnn_recurrence of a concrete backend
    ("reference" or "triton"). The triton backend's project_inputs runs fp32 on CUDA in TF32 where cuDNN
    would (``rnnlab.kernels.projection``); the reference's is exact."""
    if backend == "triton":
        warm("triton")
        return _cache["triton"]
    return _REFERENCE


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the reference and triton recurrences run in: under torch.autocast autocast's own (for
    every cell, on every device), else the input's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


class BackendSwitch:
    """Mixin for modules with a ``backend`` attribute, checked (and its imports warmed) when assigned."""

    @property
    def backend(self) -> str:
        return self._backend

    @backend.setter
    def backend(self, value: str) -> None:
        self._backend = check_backend_name(value)
        warm(value)
