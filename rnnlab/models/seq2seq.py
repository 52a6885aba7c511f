"""Many-to-many: an encoder-decoder with optional attention (Luong or Bahdanau), greedy and beam decoding.

The encoder is an (optionally bidirectional) RNN/GRU/LSTM over the padded source with its lengths; a linear
bridge maps its final states to the decoder's initial ones. The decoder is a stack of cells run one step at
a time (the same code path for training, greedy and beam search):

- ``attention=None``: the step input is the previous target word; the output layer reads the top state.
- ``"luong"`` (multiplicative, "general" score, input feeding): score(s_t, m_j) = s_t W m_j after the step;
  the attentional state tanh(W_c [context; s_t]) feeds the output layer and the next step's input.
- ``"bahdanau"`` (additive): score = v . tanh(W_q s_{t-1} + W_k m_j) before the step; the context joins the
  step input, and tanh(W_c [context; s_t]) feeds the output layer.

Greedy decoding keeps, like the beam, a running log-probability and takes its top entry, so a beam of 1
gives exactly the greedy output.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import make_cell, make_rnn, valid_mask

ATTENTIONS = (None, "luong", "bahdanau")


class Seq2Seq(nn.Module):
    """Logits (B, T, V_tgt) for a source batch (B, S) with lengths (B,) and the decoder inputs (B, T)."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        bidirectional_encoder: bool = True,
        attention: str | None = "luong",
        dropout: float = 0.2,
        backend: str = "auto",
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
    ) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.cell, self.attention, self.num_layers, self.hidden_size = (
            cell,
            attention,
            num_layers,
            hidden_size,
        )
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.directions = 2 if bidirectional_encoder else 1
        memory = self.directions * hidden_size
        self.src_embedding = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=pad_id)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=pad_id)
        self.encoder = make_rnn(
            cell,
            embedding_dim,
            hidden_size,
            num_layers,
            dropout,
            bidirectional_encoder,
            nonlinearity,
            backend,
        )
        self.bridge_h = nn.Linear(memory, hidden_size)
        self.bridge_c = nn.Linear(memory, hidden_size) if cell == "lstm" else None
        step_input = embedding_dim + (
            0 if attention is None else (hidden_size if attention == "luong" else memory)
        )
        self.cells = nn.ModuleList(
            make_cell(cell, step_input if i == 0 else hidden_size, hidden_size, nonlinearity, backend)
            for i in range(num_layers)
        )
        if attention == "luong":
            self.score = nn.Linear(hidden_size, memory, bias=False)
        elif attention == "bahdanau":
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.key = nn.Linear(memory, hidden_size)
            self.energy = nn.Linear(hidden_size, 1, bias=False)
        self.combine = nn.Linear(memory + hidden_size, hidden_size) if attention else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, tgt_vocab_size)

    # -- encoder ------------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> dict:
        """Memory (B, S, D*H), its mask (B, S), precomputed keys, and the decoder's initial state."""
        x = self.dropout(self.src_embedding(src))  # (B, S, E)
        memory, state = self.encoder(x, lengths=src_lengths)  # memory (B, S, D*H)
        h_n, c_n = state if isinstance(state, tuple) else (state, None)  # (L*D, B, H)

        def bridge(s: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
            s = s.view(self.num_layers, self.directions, s.shape[1], self.hidden_size)  # (L, D, B, H)
            s = s.permute(0, 2, 1, 3).reshape(self.num_layers, s.shape[2], -1)  # (L, B, D*H)
            return torch.tanh(linear(s))  # (L, B, H)

        h = bridge(h_n, self.bridge_h)
        c = bridge(c_n, self.bridge_c) if c_n is not None else None
        enc = {"memory": memory, "mask": valid_mask(src_lengths, src.shape[1]), "h": h, "c": c}
        enc["keys"] = self.key(memory) if self.attention == "bahdanau" else None  # (B, S, H)
        enc["feed"] = memory.new_zeros(src.shape[0], self.hidden_size)  # Luong's input feeding, (B, H)
        return enc

    # -- one decoder step -----------------------------------------------------------------------------
    def _attend(self, scores: torch.Tensor, enc: dict) -> torch.Tensor:
        weights = scores.masked_fill(~enc["mask"], float("-inf")).softmax(-1)  # (B, S)
        return torch.bmm(weights.unsqueeze(1), enc["memory"]).squeeze(1)  # (B, D*H)

    def step(self, prev: torch.Tensor, enc: dict) -> tuple[torch.Tensor, dict]:
        """Logits (B, V) for the next token after ``prev`` (B,), and the updated decoder state."""
        x = self.dropout(self.tgt_embedding(prev))  # (B, E)
        if self.attention == "luong":
            x = torch.cat([x, enc["feed"]], -1)
        elif self.attention == "bahdanau":
            query = self.query(enc["h"][-1]).unsqueeze(1)  # (B, 1, H)
            scores = self.energy(torch.tanh(query + enc["keys"])).squeeze(-1)  # (B, S)
            context = self._attend(scores, enc)
            x = torch.cat([x, context], -1)
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):
            if self.cell == "lstm":
                h, c = cell(x, (enc["h"][layer], enc["c"][layer]))
                cs.append(c)
            else:
                h = cell(x, enc["h"][layer])
            hs.append(h)
            x = self.dropout(h) if layer < self.num_layers - 1 else h
        top = hs[-1]  # (B, H)
        new = {**enc, "h": torch.stack(hs), "c": torch.stack(cs) if cs else None}
        if self.attention == "luong":
            scores = torch.bmm(enc["memory"], self.score(top).unsqueeze(-1)).squeeze(-1)  # (B, S)
            context = self._attend(scores, enc)
        if self.attention:
            top = torch.tanh(self.combine(torch.cat([context, top], -1)))  # (B, H)
            new["feed"] = top
        return self.out(self.dropout(top)), new

    # -- training ---------------------------------------------------------------------------------------
    def forward(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V). At each step a sequence reads the gold previous word with probability
        ``teacher_forcing``, otherwise its own previous prediction."""
        enc = self.encode(src, src_lengths)
        prev, logits = tgt_in[:, 0], []
        for t in range(tgt_in.shape[1]):
            step_logits, enc = self.step(prev, enc)
            logits.append(step_logits)
            if t + 1 < tgt_in.shape[1]:
                prev = tgt_in[:, t + 1]
                if teacher_forcing < 1.0:
                    own = step_logits.argmax(-1).detach()
                    coin = torch.rand(prev.shape, generator=generator, device=prev.device) < teacher_forcing
                    prev = torch.where(coin, prev, own)
        return torch.stack(logits, 1)  # (B, T, V)

    # -- decoding ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def greedy(
        self, src: torch.Tensor, src_lengths: torch.Tensor, max_len: int | torch.Tensor = 60
    ) -> list[list[int]]:
        """The most likely next word at every step, until ``<eos>`` or ``max_len`` words; ids without
        ``<bos>``/``<eos>``. ``max_len`` is one cap for all, or each sequence's own (B,): a sequence stops at
        its own cap, so its output does not depend on the rest of the batch."""
        batch = src.shape[0]
        caps = self._caps(max_len, batch, src.device)  # (B,)
        enc = self.encode(src, src_lengths)
        prev = src.new_full((batch,), self.bos_id)
        score = src.new_zeros(batch, dtype=torch.float)
        finished = caps == 0
        out = [src.new_zeros(batch, 0)]
        for t in range(int(caps.max()) if batch else 0):
            if finished.all():
                break
            logits, enc = self.step(prev, enc)
            logp = self._mask_finished(logits.log_softmax(-1), finished)  # (B, V)
            score, prev = (score[:, None] + logp).topk(1, dim=-1)  # the beam's arithmetic, with k = 1
            score, prev = score[:, 0], prev[:, 0]
            out.append(prev[:, None])
            finished = finished | (prev == self.eos_id) | (caps <= t + 1)
        return self._strip(torch.cat(out, 1), caps)  # (B, steps) -> lists

    @torch.no_grad()
    def beam_search(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        beam_size: int = 4,
        max_len: int | torch.Tensor = 60,
        length_penalty: float = 1.0,
    ) -> list[list[int]]:
        """The hypothesis with the best length-normalised log-probability, log p / length**length_penalty,
        among ``beam_size`` kept per step. ``beam_size=1`` equals :meth:`greedy`. ``max_len`` is one cap for
        all, or each sequence's own (B,); once all of a sequence's hypotheses have ended (``<eos>`` or its
        cap) its beam is left as it is, so its output does not depend on the rest of the batch."""
        if beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {beam_size}")
        batch, k = src.shape[0], beam_size
        caps = self._caps(max_len, batch, src.device)  # (B,)
        enc = self.encode(src, src_lengths)
        enc = {
            name: None if v is None else _repeat(v, k, 1 if name in ("h", "c") else 0)
            for name, v in enc.items()
        }
        beam_caps = _repeat(caps, k, 0)  # (B*K,)
        prev = src.new_full((batch * k,), self.bos_id)
        scores = torch.full((batch, k), float("-inf"), device=src.device)
        scores[:, 0] = 0.0  # one live hypothesis at the start
        finished = beam_caps == 0
        lengths = torch.zeros(batch * k, device=src.device)
        history = src.new_zeros(batch * k, 0)
        offsets = (torch.arange(batch, device=src.device) * k)[:, None]  # (B, 1)
        for t in range(int(caps.max()) if batch else 0):
            if finished.all():
                break
            done = finished.view(batch, k).all(-1, keepdim=True)  # (B, 1): sequences whose beam is final
            logits, enc = self.step(prev, enc)
            logp = self._mask_finished(logits.log_softmax(-1), finished)  # (B*K, V)
            vocab = logp.shape[-1]
            total = (scores.view(-1, 1) + logp).view(batch, k * vocab)  # (B, K*V)
            top, index = total.topk(k, dim=-1)  # (B, K)
            stay = torch.arange(k, device=src.device) * vocab + self.pad_id  # (K,) each beam + <pad>, as is
            scores, index = torch.where(done, scores, top), torch.where(done, stay, index)
            origin = (index // vocab + offsets).view(-1)  # (B*K,) the beam each new one extends
            prev = (index % vocab).view(-1)
            lengths = lengths[origin] + (~finished[origin]).float()
            finished = finished[origin] | (prev == self.eos_id) | (beam_caps <= t + 1)
            history = torch.cat([history[origin], prev[:, None]], 1)
            enc = {**enc, "h": enc["h"][:, origin], "feed": enc["feed"][origin]}
            if enc["c"] is not None:
                enc["c"] = enc["c"][:, origin]
        normalised = scores / lengths.view(batch, k).clamp_min(1) ** length_penalty  # (B, K)
        best = (normalised.argmax(-1) + offsets[:, 0]).tolist()
        return self._strip(history[best], caps)

    @staticmethod
    def _caps(max_len: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        """Each sequence's most output words, (B,) int64, from one int for all or a tensor (B,)."""
        caps = torch.as_tensor(max_len, device=device)
        if caps.is_floating_point() or caps.dtype == torch.bool or caps.shape not in ((), (batch,)):
            raise ValueError(
                f"max_len must be an int or an integer tensor of shape (B,) = ({batch},), got {max_len!r}"
            )
        if (caps < 0).any():
            raise ValueError(f"max_len must be non-negative, got {max_len!r}")
        return caps.long().expand(batch)

    def _mask_finished(self, logp: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
        """A finished hypothesis can only continue with padding, at no cost."""
        if not finished.any():
            return logp
        done = torch.full_like(logp[0], float("-inf"))
        done[self.pad_id] = 0.0
        return torch.where(finished[:, None], done, logp)

    def _strip(self, ids: torch.Tensor, caps: torch.Tensor) -> list[list[int]]:
        """Rows of ``ids`` (B, T) cut at their cap (B,) and before their ``<eos>``."""
        out = []
        for row, cap in zip(ids.tolist(), caps.tolist(), strict=True):
            row = row[:cap]
            out.append(row[: row.index(self.eos_id)] if self.eos_id in row else row)
        return out


def _repeat(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Each batch entry repeated k times next to itself along ``dim``: b0 b0 b1 b1 ... for k = 2."""
    return x.repeat_interleave(k, dim=dim)
