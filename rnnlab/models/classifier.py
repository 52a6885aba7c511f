"""Many-to-one: a sequence classifier (sentiment).

embedding -> stacked, optionally bidirectional RNN/GRU/LSTM -> pooling over the valid steps -> dropout ->
linear. Padded batches go through the layer with their ``lengths``; nothing is packed.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import last_layer_state, make_rnn, valid_mask

POOLINGS = ("last", "mean", "max")

PRESETS = {
    # The article's model: Embedding(1000, 64) -> LSTM(128) -> Dense(10), one bias per gate as Keras counts
    # (164,106 parameters).
    "article_lstm": dict(
        vocab_size=1000,
        num_classes=10,
        embedding_dim=64,
        hidden_size=128,
        cell="lstm",
        bidirectional=False,
        pooling="last",
        dropout=0.0,
        single_bias=True,
    ),
}


class SentimentClassifier(nn.Module):
    """Logits (B, num_classes) for token ids (B, T) with lengths (B,).

    ``pooling``: ``last`` (the final state of the top layer, both directions), ``mean`` or ``max`` over the
    valid steps of the top layer's outputs. ``embedding_dropout`` drops whole word vectors' features
    before the recurrence; ``dropout`` applies between stacked layers and before the linear head.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int = 2,
        embedding_dim: int = 128,
        hidden_size: int = 128,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        bidirectional: bool = True,
        pooling: str = "max",
        dropout: float = 0.5,
        embedding_dropout: float = 0.0,
        padding_idx: int | None = 0,
        single_bias: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling, self.num_layers = pooling, num_layers
        self.directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=padding_idx)
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.rnn = make_rnn(
            cell,
            embedding_dim,
            hidden_size,
            num_layers,
            dropout,
            bidirectional,
            nonlinearity,
            backend,
            single_bias,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.directions * hidden_size, num_classes)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> SentimentClassifier:
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def article(cls, **overrides) -> SentimentClassifier:
        """Embedding(1000, 64) -> LSTM(128) -> Dense(10): 164,106 parameters."""
        return cls.from_preset("article_lstm", **overrides)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        batch, steps = tokens.shape
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long, device=tokens.device)
        x = self.embedding_dropout(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, lengths=lengths)  # out (B, T, D*H), zero past each length
        if self.pooling == "last":
            h_n = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            pooled = last_layer_state(h_n, self.num_layers, self.directions)
        elif self.pooling == "mean":
            pooled = out.sum(1) / lengths.to(out.dtype)[:, None]
        else:
            mask = valid_mask(lengths, steps)[:, :, None]  # (B, T, 1)
            pooled = out.masked_fill(~mask, float("-inf")).amax(1)
        return self.head(self.dropout(pooled))  # (B, C)
