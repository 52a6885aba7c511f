"""rnnlab: recurrent networks for PyTorch.

Drop-in RNN, LSTM and GRU layers (and cells) with a backend switch between fused Triton kernels, a
pure-PyTorch reference path and torch.nn's own implementation.
"""

from .backends import BACKENDS
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN

__all__ = ["BACKENDS", "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell", "compose", "train"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """``rnnlab.compose`` and ``rnnlab.train`` (the notebook API), imported on first use: they pull in
    Hydra and Lightning, which ``import rnnlab`` for the layers alone does not need."""
    if name in ("compose", "train"):
        from . import experiment

        return getattr(experiment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
