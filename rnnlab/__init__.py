"""rnnlab: recurrent networks for PyTorch.

Drop-in RNN, LSTM and GRU layers (and cells) with a backend switch between fused Triton kernels, a
pure-PyTorch reference path and torch.nn's own implementation.
"""

import importlib

from .backends import BACKENDS
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN

__all__ = ["BACKENDS", "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "compose", "train"]
__version__ = "0.1.0"


# Imported on first use (``rnnlab.tasks.sentiment.fit(...)`` after a bare ``import rnnlab``, as the README
# writes it): they pull in Lightning, Hydra and the corpora, which the layers alone do not need.
_SUBPACKAGES = ("bench", "data", "experiment", "models", "reference", "tasks")


def __getattr__(name: str):
    """``rnnlab.compose`` and ``rnnlab.train`` (the notebook API) and the subpackages, imported on first
    use."""
    if name in ("compose", "train"):
        from . import experiment

        return getattr(experiment, name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
