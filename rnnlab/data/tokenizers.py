"""Word- and character-level tokenizers, built from a training split only.

``WordTokenizer`` splits on whitespace, then splits punctuation off words; a piece that was glued to the one
before it (no space between) is marked with a ``##`` prefix, so ``decode`` gives back the text exactly (up to
runs of whitespace, and lowercasing when asked for): "It's over." -> ["It", "##'", "##s", "over", "##."].
``CharTokenizer`` maps each character to an id. Both save to and load from a plain dict (JSON-ready).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
GLUE = "##"
_PIECE = re.compile(r"\w+|[^\w\s]")


class WordTokenizer:
    """Words and punctuation, with ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2, ``<eos>`` = 3."""

    specials = (PAD, UNK, BOS, EOS)

    def __init__(self, vocab: list[str], lowercase: bool = False) -> None:
        if list(vocab[: len(self.specials)]) != list(self.specials):
            raise ValueError(f"a vocabulary must start with {self.specials}")
        self.vocab = list(vocab)
        self.lowercase = lowercase
        self.index = {token: i for i, token in enumerate(self.vocab)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = range(4)

    @classmethod
    def build(
        cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None, lowercase: bool = False
    ) -> WordTokenizer:
        """Tokens seen ``min_freq`` times or more; at most ``max_size`` (the most frequent) with specials."""
        counts = Counter(token for text in texts for token in cls.split(text, lowercase))
        kept = [token for token, n in counts.most_common() if n >= min_freq]
        if max_size is not None:
            kept = kept[: max(0, max_size - len(cls.specials))]
        return cls([*cls.specials, *kept], lowercase)

    @staticmethod
    def split(text: str, lowercase: bool = False) -> list[str]:
        if lowercase:
            text = text.lower()
        tokens = []
        for chunk in text.split():
            pieces = _PIECE.findall(chunk)
            tokens += pieces[:1] + [GLUE + piece for piece in pieces[1:]]
        return tokens

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [self.index.get(token, self.unk_id) for token in self.split(text, self.lowercase)]
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids: Iterable[int]) -> str:
        """Text from ids, stopping at ``<eos>`` and skipping ``<pad>`` and ``<bos>``."""
        text = ""
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            token = self.vocab[i]
            if token.startswith(GLUE) and len(token) > len(GLUE):
                text += token[len(GLUE) :]
            else:
                text += (" " if text else "") + token
        return text

    def to_dict(self) -> dict:
        return {"kind": "word", "vocab": self.vocab, "lowercase": self.lowercase}

    @classmethod
    def from_dict(cls, state: dict) -> WordTokenizer:
        return cls(state["vocab"], state["lowercase"])


class CharTokenizer:
    """One id per character, ``<unk>`` = 0 for characters the training split never showed."""

    def __init__(self, chars: list[str]) -> None:
        self.vocab = [UNK, *chars]
        self.index = {c: i for i, c in enumerate(self.vocab)}
        self.unk_id = 0

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharTokenizer:
        chars = set()
        for text in texts:
            chars.update(text)
        return cls(sorted(chars))

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, self.unk_id) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join("\ufffd" if int(i) == self.unk_id else self.vocab[int(i)] for i in ids)

    def to_dict(self) -> dict:
        return {"kind": "char", "chars": self.vocab[1:]}

    @classmethod
    def from_dict(cls, state: dict) -> CharTokenizer:
        return cls(state["chars"])
