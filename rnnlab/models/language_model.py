"""One-to-many: a recurrent language model (embedding -> RNN/GRU/LSTM -> linear) and sampling from it.

Sampling continues a prompt one token at a time, carrying the recurrent state, with temperature, top-k and
top-p (nucleus) filtering. With an empty prompt it starts from ``start_id`` (e.g. a newline).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .common import make_rnn


def detach_state(state):
    """The recurrent state cut from the graph: truncated BPTT carries values, not gradients, across chunks."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def check_sampling(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """ValueError, naming the argument and its range, for a sampling setting outside it. A negative
    temperature would otherwise sample from the inverted distribution, a negative top-k would mean no top-k.

    ``temperature``: finite, >= 0 (0: the most likely token). ``top_k``: >= 0 (0 or None: off).
    ``top_p``: in (0, 1] (1 or None: off).
    """
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be finite and >= 0 (0: the most likely token), got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 or None: no top-k filtering), got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 or None: no nucleus filtering), got {top_p}")


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Logits (..., V) with all but the ``top_k`` largest, and all outside the smallest set whose probability
    reaches ``top_p``, set to -inf. The most likely token always survives. ``top_k`` 0 or None, ``top_p`` 1 or
    None: no filtering; other values outside ``check_sampling``'s ranges raise ValueError."""
    check_sampling(top_k=top_k, top_p=top_p)
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # the mass before a token already reaches p
        drop[..., 0] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


class LanguageModel(nn.Module):
    """Next-token logits (B, T, V) and the final state for token ids (B, T) and an initial state.

    ``tie_weights`` shares the embedding matrix with the output layer (a projection from ``hidden_size`` to
    ``embedding_dim`` is inserted when they differ).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 512,
        num_layers: int = 2,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        dropout: float = 0.1,
        tie_weights: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = make_rnn(
            cell, embedding_dim, hidden_size, num_layers, dropout, nonlinearity=nonlinearity, backend=backend
        )
        self.dropout = nn.Dropout(dropout)
        self.project = (
            nn.Linear(hidden_size, embedding_dim) if tie_weights and hidden_size != embedding_dim else None
        )
        self.head = nn.Linear(embedding_dim if tie_weights else hidden_size, vocab_size)
        if tie_weights:
            self.head.weight = self.embedding.weight

    def forward(self, tokens: torch.Tensor, state=None):
        out, state = self.rnn(self.dropout(self.embedding(tokens)), state)  # (B, T, H)
        out = self.dropout(out)
        if self.project is not None:
            out = self.project(out)  # (B, T, E)
        return self.head(out), state  # (B, T, V)

    @torch.no_grad()
    def sample(
        self,
        prompt: list[int],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        stop: Callable[[list[int]], bool] | None = None,
        start_id: int = 0,
    ) -> list[int]:
        """New token ids continuing ``prompt`` (the prompt itself is not returned).

        ``temperature`` 0 picks the most likely token every step. ``stop(generated)`` is called after each
        token; sampling ends when it returns True (the stopping token is kept). Settings outside the ranges
        of ``check_sampling`` raise ValueError before anything runs.
        """
        check_sampling(temperature, top_k, top_p)
        was_training = self.training
        self.eval()
        device = self.embedding.weight.device
        context = torch.tensor([prompt or [start_id]], device=device)  # (1, P)
        logits, state = self(context)
        generated: list[int] = []
        for _ in range(max_new_tokens):
            last = logits[0, -1]  # (V,)
            if temperature == 0:
                token = int(last.argmax())
            else:
                probs = filter_logits(last / temperature, top_k, top_p).softmax(-1)
                token = int(torch.multinomial(probs.cpu(), 1, generator=generator))
            generated.append(token)
            if stop is not None and stop(generated):
                break
            logits, state = self(torch.tensor([[token]], device=device), state)
        self.train(was_training)
        return generated
