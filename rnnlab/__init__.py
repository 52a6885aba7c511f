"""rnnlab: recurrent networks for PyTorch.

Drop-in RNN, LSTM and GRU layers (and cells) with a backend switch between fused Triton kernels, a
pure-PyTorch reference path and torch.nn's own implementation.
"""

from .backends import BACKENDS
from .cells import GRUCell, LSTMCell, RNNCell
from .layers import GRU, LSTM, RNN

__all__ = ["BACKENDS", "GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNCell"]
__version__ = "0.1.0"
