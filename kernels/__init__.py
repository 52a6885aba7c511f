"""Fused Triton kernels for the recurrences of ``rnnlab.reference``: same functions, same semantics.

    lstm_recurrence(gx, w_hh, h0, c0, lengths=None, reverse=False, *, overwrite_gx=False) -> (out, h_n, c_n)
    gru_recurrence(gx, w_hh, b_hh, h0, lengths=None, reverse=False, *, overwrite_gx=False) -> (out, h_n)
    rnn_recurrence(gx, w_hh, h0, lengths=None, reverse=False, nonlinearity="tanh") -> (out, h_n)
    supports(cell, hidden_size, dtype, device) -> bool    available() -> bool

Both directions of a bidirectional layer go in one call with gx (2, T, B, G*H), w_hh (2, G*H, H), the
states (2, B, H) (GRU's b_hh (2, 3H)) and reverse=False: direction 0 runs forward in time, direction 1 in
reverse, and the outputs come back stacked likewise. Where ``launch.bidir_launch`` says so, that is one
launch, the direction the grid's third axis.

The cell modules import Triton (and register the ``rnnlab::*`` torch.library ops) on first use of one of
their functions, so importing this package works where Triton is missing. Set TRITON_INTERPRET=1 before
that first use to run the kernels on the CPU with Triton's interpreter (the tests do).
"""

import importlib

from .common import available, supports

__all__ = ["available", "gru_recurrence", "lstm_recurrence", "rnn_recurrence", "supports"]

_LAZY = {"lstm_recurrence": ".lstm", "gru_recurrence": ".gru", "rnn_recurrence": ".rnn"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
