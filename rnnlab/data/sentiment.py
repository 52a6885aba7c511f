"""Binary sentiment (many-to-one): sentences with a human rating, label = rating > 0.

The corpora are the four sets of Hutto & Gilbert (ICWSM 2014): ``movies`` (Rotten Tomatoes snippets, the
MR / rt-polarity sentences), ``amazon``, ``tweets`` and ``nyt``. A file is a TSV with the header
``score<TAB>text``; rows with score 0 are dropped. Point ``path`` at your own file in the same format.

Example::

    dm = SentimentDataModule(domain="movies", seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))   # tokens (B, T), lengths (B,), labels (B,)
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from .base import SplitDataModule
from .batching import pad, seeded_split
from .io import CorpusError, corpus_path, read_tsv
from .tokenizers import WordTokenizer

DOMAINS = {
    "movies": "sentiment/movieReviewSnippets.tsv.gz",
    "amazon": "sentiment/amazonReviewSnippets.tsv.gz",
    "tweets": "sentiment/tweets.tsv.gz",
    "nyt": "sentiment/nytEditorialSnippets.tsv.gz",
}
STAGES = ("train", "val", "test")


def read_sentiment(path: str | Path) -> list[tuple[int, str, int]]:
    """(line number, text, label) for each row of a ``score<TAB>text`` file whose score is not 0."""
    rows = []
    for number, (score, text) in read_tsv(path, ("score", "text")):
        try:
            value = float(score)
        except ValueError:
            raise CorpusError(path, f"score {score!r} is not a number", number) from None
        if not math.isfinite(value):
            raise CorpusError(path, f"score {score!r} is not a finite number", number)
        if value != 0:
            rows.append((number, text, int(value > 0)))
    if not rows:
        raise CorpusError(path, "every score is 0: no labelled rows")
    return rows


class SentimentDataModule(SplitDataModule):
    """Seeded train/val/test split of a sentiment TSV, a word tokenizer from the training split, and
    length-bucketed, padded batches ``{"tokens": (B, T), "lengths": (B,), "labels": (B,)}``.

    Args:
        domain: one of ``movies``, ``amazon``, ``tweets``, ``nyt`` (ignored when ``path`` is given).
        path: your own ``score<TAB>text`` file (``.tsv`` or ``.tsv.gz``).
        split: train/val/test fractions; ``seed`` draws the split and the batch order. A split with a
            fraction above 0 that comes out empty (a file too small) is a CorpusError; 0 leaves it empty.
        min_freq: a word seen fewer times in the training split becomes ``<unk>``.
        max_len: truncate sentences to this many tokens (None keeps them whole).
    """

    def __init__(
        self,
        domain: str = "movies",
        path: str | None = None,
        seed: int = 0,
        split: tuple[float, float, float] = (0.8, 0.1, 0.1),
        batch_size: int = 64,
        min_freq: int = 2,
        max_vocab: int | None = None,
        lowercase: bool = True,
        max_len: int | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if path is None and domain not in DOMAINS:
            raise ValueError(f"domain must be one of {sorted(DOMAINS)}, got {domain!r}")
        self.domain, self.path, self.seed, self.split = domain, path, seed, tuple(split)
        self.batch_size, self.min_freq, self.max_vocab = batch_size, min_freq, max_vocab
        self.lowercase, self.max_len, self.num_workers = lowercase, max_len, num_workers
        self.tokenizer: WordTokenizer | None = None
        self.data: dict[str, list[dict]] = {}
        self._rows: dict[str, list] = {}
        self._split_lines: dict[str, list[int]] = {}

    @property
    def file(self) -> Path:
        return Path(self.path) if self.path is not None else corpus_path(DOMAINS[self.domain])

    @property
    def vocab_size(self) -> int:
        self._require_setup()
        return len(self.tokenizer)

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        rows = read_sentiment(self.file)
        parts = seeded_split(len(rows), self.split, self.seed)
        by_stage = {s: [rows[i] for i in part] for s, part in zip(STAGES, parts, strict=True)}
        self._refuse_empty_splits(self.file, {s: len(by_stage[s]) for s in STAGES}, "labelled rows")
        self._rows = by_stage
        self._split_lines = {s: [r[0] for r in by_stage[s]] for s in STAGES}
        if self.tokenizer is None:  # a tokenizer restored from a checkpoint is kept
            self.tokenizer = WordTokenizer.build(
                (text for _, text, _ in by_stage["train"]), self.min_freq, self.max_vocab, self.lowercase
            )
        self._encode()

    def _encode(self) -> None:
        for s in STAGES:
            self.data[s] = []
            for _, text, label in self._rows[s]:
                ids = self.tokenizer.encode(text)[: self.max_len] or [self.tokenizer.unk_id]
                self.data[s].append({"ids": ids, "label": label})

    def split_summary(self) -> dict:
        """The file, seed, sizes and the file line numbers of each split: enough to rebuild it."""
        self._require_setup()
        return {
            "file": str(self.file),
            "seed": self.seed,
            "fractions": list(self.split),
            "sizes": {s: len(self.data[s]) for s in STAGES},
            "positive_fraction": {
                s: sum(d["label"] for d in self.data[s]) / max(1, len(self.data[s])) for s in STAGES
            },
            "vocab_size": len(self.tokenizer),
            "lines": self._split_lines,
        }

    def _collate(self, items: list[dict]) -> dict[str, torch.Tensor]:
        tokens, lengths = pad([d["ids"] for d in items], self.tokenizer.pad_id)
        return {"tokens": tokens, "lengths": lengths, "labels": torch.tensor([d["label"] for d in items])}

    def _loader(self, stage: str) -> torch.utils.data.DataLoader:
        self._require_setup()
        data = self.data[stage]
        return self._bucketed_loader(data, [len(d["ids"]) for d in data], stage, self._collate)

    def state_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.to_dict() if self.tokenizer else None}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("tokenizer"):
            self.tokenizer = WordTokenizer.from_dict(state_dict["tokenizer"])
            if self.data:  # already set up: re-encode with the restored vocabulary
                self._encode()

    def _require_setup(self) -> None:
        if self.tokenizer is None or not self.data:
            raise RuntimeError("call setup() first: the split and the tokenizer are built there")
