"""Character-level language modelling (one-to-many): Jane Austen's novels, or O'Neill's folk tunes in ABC.

Each split is one long stream of characters, laid out as ``batch_size`` parallel rows; batch ``i`` holds the
``i``-th chunk of ``seq_len`` characters of every row, so row ``b`` of batch ``i + 1`` continues row ``b`` of
batch ``i``. That is the layout truncated BPTT needs: the task carries the recurrent state (detached) from one
batch to the next within an epoch.

Splits: for ``austen`` (and any ``text`` files) each novel is cut by position: its first 90% trains, the next
5% validates, the last 5% tests (cut at a line end). For ``abc`` whole tunes are drawn into the splits by a
seeded shuffle. ``split_summary()`` records both.

Example::

    dm = CharLMDataModule(corpus="austen", seq_len=128, batch_size=64)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))   # input (B, T), target (B, T): the input shifted by one
"""

from __future__ import annotations

from pathlib import Path

import torch

from .abc import read_tunes
from .base import SplitDataModule
from .batching import seeded_split
from .io import CorpusError, corpus_path, read_lines
from .tokenizers import CharTokenizer

AUSTEN = tuple(
    f"generation/austen_{name}.txt.gz"
    for name in (
        "emma",
        "mansfieldpark",
        "northangerabbey",
        "persuasion",
        "prideprejudice",
        "sensesensibility",
    )
)
ABC = ("generation/oneills1850.abc.gz",)
CORPORA = {"austen": "text", "abc": "abc"}
STAGES = ("train", "val", "test")


class StreamChunks(torch.utils.data.Dataset):
    """Consecutive (input, target) chunks of a stream laid out as ``rows`` parallel rows.

    Item ``i`` is ``{"input": (rows, t), "target": (rows, t)}`` with t = ``seq_len`` (the last chunk may be
    shorter); the target is the input shifted one character on.
    """

    def __init__(self, ids: torch.Tensor, rows: int, seq_len: int) -> None:
        width = len(ids) // rows
        self.data = ids[: rows * width].view(rows, width)  # (B, N): row b is a contiguous piece
        self.seq_len = seq_len

    def __len__(self) -> int:
        return -(-(self.data.shape[1] - 1) // self.seq_len)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        start = i * self.seq_len
        stop = min(start + self.seq_len, self.data.shape[1] - 1)
        return {"input": self.data[:, start:stop], "target": self.data[:, start + 1 : stop + 1]}


class CharLMDataModule(SplitDataModule):
    """Character streams for truncated-BPTT language modelling.

    Args:
        corpus: ``austen`` (the six novels), ``abc`` (O'Neill's 1850 tunes) or, with ``path``, ``text``.
        path: your own file or list of files: plain text (``.txt``/``.txt.gz``, one document each) when
            ``corpus`` is ``austen``/``text``; ABC tunes (``.abc``/``.abc.gz``) when it is ``abc``.
        seq_len: characters per chunk (the BPTT truncation length).
        batch_size: parallel rows of the stream; ``eval_batch_size`` for validation and test.
        split: train/val/test fractions (of each novel's length, or of the tunes).
    """

    def __init__(
        self,
        corpus: str = "austen",
        path: str | list[str] | None = None,
        seq_len: int = 128,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        split: tuple[float, float, float] = (0.9, 0.05, 0.05),
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if corpus not in (*CORPORA, "text"):
            raise ValueError(f"corpus must be one of {[*CORPORA, 'text']}, got {corpus!r}")
        if corpus == "text" and path is None:
            raise ValueError("corpus='text' needs path= (your own plain-text file or files)")
        self.corpus, self.path, self.seq_len, self.batch_size = corpus, path, seq_len, batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.split, self.seed, self.num_workers = tuple(split), seed, num_workers
        self.tokenizer: CharTokenizer | None = None
        self.text: dict[str, str] = {}
        self.ids: dict[str, torch.Tensor] = {}
        self._summary: dict = {}

    @property
    def format(self) -> str:
        return "abc" if self.corpus == "abc" else "text"

    @property
    def files(self) -> list[Path]:
        if self.path is not None:
            return [Path(p) for p in ([self.path] if isinstance(self.path, str | Path) else self.path)]
        return [corpus_path(p) for p in (ABC if self.corpus == "abc" else AUSTEN)]

    @property
    def vocab_size(self) -> int:
        self._require_setup()
        return len(self.tokenizer)

    def setup(self, stage: str | None = None) -> None:
        if self.text:
            return
        parts: dict[str, list[str]] = {s: [] for s in STAGES}
        summary = []
        if self.format == "abc":
            for path in self.files:
                tunes = read_tunes(path)
                chosen = seeded_split(len(tunes), self.split, self.seed)
                for s, indices in zip(STAGES, chosen, strict=True):
                    parts[s] += [tunes[i][1] for i in indices]
                xs = {s: [tunes[i][0] for i in idx] for s, idx in zip(STAGES, chosen, strict=True)}
                summary.append({"file": str(path), "tunes": len(tunes), "x_line_numbers": xs})
            self.text = {s: "\n".join(parts[s]) + "\n" for s in STAGES}  # a blank line ends each tune
        else:
            for path in self.files:
                text = "\n".join(line for _, line in read_lines(path)) + "\n"
                cuts = _cuts(text, self.split)
                for s, a, b in zip(STAGES, cuts[:-1], cuts[1:], strict=True):
                    parts[s].append(text[a:b])
                summary.append({"file": str(path), "characters": len(text), "cuts": cuts})
            self.text = {s: "\n".join(parts[s]) for s in STAGES}
        if self.tokenizer is None:  # a tokenizer restored from a checkpoint is kept
            self.tokenizer = CharTokenizer.build([self.text["train"]])
        self.ids = {s: torch.tensor(self.tokenizer.encode(self.text[s]), dtype=torch.long) for s in STAGES}
        for s in STAGES:
            rows = self.batch_size if s == "train" else self.eval_batch_size
            if len(self.ids[s]) < 2 * rows + 1:
                raise CorpusError(
                    self.files[0],
                    f"the {s} split has {len(self.ids[s])} characters: too few for {rows} rows of at least "
                    "two characters; use a smaller batch size or a longer file",
                )
        self._summary = {
            "corpus": self.corpus,
            "seed": self.seed,
            "fractions": list(self.split),
            "characters": {s: len(self.text[s]) for s in STAGES},
            "vocab_size": len(self.tokenizer),
            "files": summary,
        }

    def split_summary(self) -> dict:
        """Seed, sizes, and where each file was cut (character offsets, or the X: lines of each split)."""
        self._require_setup()
        return self._summary

    def _loader(self, stage: str) -> torch.utils.data.DataLoader:
        self._require_setup()
        rows = self.batch_size if stage == "train" else self.eval_batch_size
        chunks = StreamChunks(self.ids[stage], rows, self.seq_len)
        # batch_size=None: each item already is a batch; no shuffling, the order is what carries the state
        return torch.utils.data.DataLoader(
            chunks, batch_size=None, shuffle=False, num_workers=self.num_workers, generator=self._generator()
        )

    def state_dict(self) -> dict:
        return {"tokenizer": self.tokenizer.to_dict() if self.tokenizer else None}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("tokenizer"):
            self.tokenizer = CharTokenizer.from_dict(state_dict["tokenizer"])
            if self.text:
                self.ids = {s: torch.tensor(self.tokenizer.encode(self.text[s])) for s in STAGES}

    def _require_setup(self) -> None:
        if self.tokenizer is None or not self.text:
            raise RuntimeError("call setup() first: the split and the tokenizer are built there")


def _cuts(text: str, fractions: tuple[float, ...]) -> list[int]:
    """Character offsets [0, a, b, len] cutting ``text`` by ``fractions``, each cut moved to a line end."""
    cuts, total = [0], 0.0
    for fraction in fractions[:-1]:
        total += fraction
        at = int(total * len(text))
        newline = text.find("\n", at)
        cuts.append(max(cuts[-1], newline + 1 if newline >= 0 else at))
    return [*cuts, len(text)]
