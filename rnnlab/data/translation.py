"""German -> English sentence pairs (many-to-many): the Ding dictionary's example sentences.

A file is a TSV with the header ``de<TAB>en``, one sentence pair a line. Point ``path`` at your own file in
the same format; ``source="en"`` translates the other way.

Example::

    dm = TranslationDataModule(seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    # src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y, tgt_out (B, T) = y <eos>, tgt_lengths (B,),
    # src_text and ref: the untokenised sentences (lists of str)
"""

from __future__ import annotations

from pathlib import Path

import torch

from .base import SplitDataModule
from .batching import pad, seeded_split
from .io import CorpusError, corpus_path, read_tsv
from .tokenizers import WordTokenizer

DING = "translation/ding_de_en.tsv.gz"
STAGES = ("train", "val", "test")
LANGUAGES = ("de", "en")


class TranslationDataModule(SplitDataModule):
    """Seeded 90/5/5 split of a ``de<TAB>en`` file, one word tokenizer per language from the training split,
    and batches bucketed by source length.

    Args:
        path: your own ``de<TAB>en`` file (``.tsv`` or ``.tsv.gz``); the bundled Ding pairs by default.
        source: ``de`` (translate German to English) or ``en``.
        split: train/val/test fractions. A split with a fraction above 0 that comes out empty (a file too
            small) is a CorpusError; 0 leaves it empty.
        min_freq: a word seen fewer times in the training split becomes ``<unk>``.
        max_len: pairs where either side has more tokens are left out of training (not of val/test).
    """

    def __init__(
        self,
        path: str | None = None,
        source: str = "de",
        seed: int = 0,
        split: tuple[float, float, float] = (0.9, 0.05, 0.05),
        batch_size: int = 64,
        min_freq: int = 2,
        max_vocab: int | None = None,
        lowercase: bool = False,
        max_len: int = 50,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if source not in LANGUAGES:
            raise ValueError(f"source must be one of {LANGUAGES}, got {source!r}")
        self.path, self.source, self.seed, self.split = path, source, seed, tuple(split)
        self.batch_size, self.min_freq, self.max_vocab = batch_size, min_freq, max_vocab
        self.lowercase, self.max_len, self.num_workers = lowercase, max_len, num_workers
        self.src_tokenizer: WordTokenizer | None = None
        self.tgt_tokenizer: WordTokenizer | None = None
        self.pairs: dict[str, list[tuple[int, str, str]]] = {}
        self.data: dict[str, list[dict]] = {}

    @property
    def file(self) -> Path:
        return Path(self.path) if self.path is not None else corpus_path(DING)

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        rows = read_tsv(self.file, LANGUAGES)
        src, tgt = (0, 1) if self.source == "de" else (1, 0)
        pairs = [(number, fields[src].strip(), fields[tgt].strip()) for number, fields in rows]
        parts = seeded_split(len(pairs), self.split, self.seed)
        self.pairs = {s: [pairs[i] for i in part] for s, part in zip(STAGES, parts, strict=True)}
        self._refuse_empty_splits(self.file, {s: len(self.pairs[s]) for s in STAGES}, "sentence pairs")
        if self.src_tokenizer is None:  # tokenizers restored from a checkpoint are kept
            args = (self.min_freq, self.max_vocab, self.lowercase)
            self.src_tokenizer = WordTokenizer.build((p[1] for p in self.pairs["train"]), *args)
            self.tgt_tokenizer = WordTokenizer.build((p[2] for p in self.pairs["train"]), *args)
        self._encode()
        if self.pairs["train"] and not self.data["train"]:
            raise CorpusError(
                self.file,
                f"all {len(self.pairs['train'])} training pairs have a side longer than "
                f"max_len={self.max_len} tokens, and are left out: nothing to train on; raise data.max_len",
            )

    def _encode(self) -> None:
        for s in STAGES:
            self.data[s] = []
            for _, source, target in self.pairs[s]:
                ids = self.src_tokenizer.encode(source) or [self.src_tokenizer.unk_id]
                out = self.tgt_tokenizer.encode(target, bos=True, eos=True)
                if s == "train" and max(len(ids), len(out) - 2) > self.max_len:
                    continue
                self.data[s].append({"src": ids, "tgt": out, "src_text": source, "ref": target})

    def split_summary(self) -> dict:
        """The file, direction, seed, sizes and the file line numbers of each split."""
        self._require_setup()
        return {
            "file": str(self.file),
            "source": self.source,
            "seed": self.seed,
            "fractions": list(self.split),
            "sizes": {s: len(self.data[s]) for s in STAGES},
            "vocab_sizes": {"source": len(self.src_tokenizer), "target": len(self.tgt_tokenizer)},
            "lines": {s: [p[0] for p in self.pairs[s]] for s in STAGES},
        }

    def _collate(self, items: list[dict]) -> dict:
        src, src_lengths = pad([d["src"] for d in items], self.src_tokenizer.pad_id)
        tgt, tgt_lengths = pad([d["tgt"] for d in items], self.tgt_tokenizer.pad_id)  # <bos> y <eos>
        return {
            "src": src,
            "src_lengths": src_lengths,
            "tgt_in": tgt[:, :-1],  # (B, T): <bos> y; the trailing column is <eos> or padding
            "tgt_out": tgt[:, 1:],  # (B, T): y <eos>
            "tgt_lengths": tgt_lengths - 1,
            "src_text": [d["src_text"] for d in items],
            "ref": [d["ref"] for d in items],
        }

    def _loader(self, stage: str) -> torch.utils.data.DataLoader:
        self._require_setup()
        data = self.data[stage]
        return self._bucketed_loader(data, [len(d["src"]) for d in data], stage, self._collate)

    def state_dict(self) -> dict:
        if self.src_tokenizer is None:
            return {}
        return {"source": self.src_tokenizer.to_dict(), "target": self.tgt_tokenizer.to_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("source"):
            self.src_tokenizer = WordTokenizer.from_dict(state_dict["source"])
            self.tgt_tokenizer = WordTokenizer.from_dict(state_dict["target"])
            if self.pairs:
                self._encode()

    def _require_setup(self) -> None:
        if self.src_tokenizer is None or not self.data:
            raise RuntimeError("call setup() first: the split and the tokenizers are built there")
