"""The pure-PyTorch reference recurrences: the specification the fused kernels are tested against, and the
training path on the CPU. Conventions in ``rnnlab.reference.common``."""

from .gru import gru_recurrence
from .lstm import lstm_recurrence
from .rnn import NONLINEARITIES, rnn_recurrence

__all__ = ["NONLINEARITIES", "gru_recurrence", "lstm_recurrence", "rnn_recurrence"]
