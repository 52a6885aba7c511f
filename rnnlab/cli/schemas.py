"""Structured-config schemas: the types and the allowed keys of the ``data``, ``model`` and ``optim`` nodes.

Each option file in ``conf/data`` and ``conf/model`` starts its defaults list with one of these schemas, so a
misspelt key (``model.hiden_size=64``), a wrong type (``data.batch_size=big``) or a value outside an enum
(``model.cell=lsmt``) fails when the config is composed, with Hydra's message, before any data is read.

The schemas hold the types; the YAML files hold the values and the reason for each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import II


class Cell(Enum):
    rnn = "rnn"
    gru = "gru"
    lstm = "lstm"


class Nonlinearity(Enum):
    tanh = "tanh"
    relu = "relu"
    sigmoid = "sigmoid"


class Backend(Enum):
    auto = "auto"
    reference = "reference"
    triton = "triton"
    cudnn = "cudnn"


class Pooling(Enum):
    last = "last"
    mean = "mean"
    max = "max"


class Optimizer(Enum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Scheduler(Enum):
    cosine = "cosine"
    plateau = "plateau"
    step = "step"


class Domain(Enum):
    movies = "movies"
    amazon = "amazon"
    tweets = "tweets"
    nyt = "nyt"


class Attention(Enum):
    luong = "luong"
    bahdanau = "bahdanau"


class Language(Enum):
    de = "de"
    en = "en"


class Corpus(Enum):
    austen = "austen"
    abc = "abc"
    text = "text"


# ---- model: the LightningModule (``_target_``) and the network's shape ----------------------------------


@dataclass
class RecurrentConfig:
    """What every model shares: the recurrent layer."""

    _target_: str = "???"
    cell: Cell = Cell.lstm
    nonlinearity: Nonlinearity = Nonlinearity.tanh
    backend: Backend = Backend.auto
    embedding_dim: int = 128
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0


@dataclass
class ClassifierConfig(RecurrentConfig):
    """rnnlab.tasks.SentimentTask (many-to-one)."""

    _target_: str = "rnnlab.tasks.SentimentTask"
    bidirectional: bool = True
    pooling: Pooling = Pooling.max
    embedding_dropout: float = 0.0
    num_classes: int = 2
    single_bias: bool = False


@dataclass
class LanguageModelConfig(RecurrentConfig):
    """rnnlab.tasks.LanguageModelTask (one-to-many, character level)."""

    _target_: str = "rnnlab.tasks.LanguageModelTask"
    tie_weights: bool = False


@dataclass
class Seq2SeqConfig(RecurrentConfig):
    """rnnlab.tasks.TranslationTask (many-to-many: encoder-decoder, optional attention)."""

    _target_: str = "rnnlab.tasks.TranslationTask"
    bidirectional_encoder: bool = True
    attention: Attention | None = Attention.luong
    teacher_forcing: float = 1.0
    beam_size: int = 4
    length_penalty: float = 1.0
    max_decode_len: int = 60
    label_smoothing: float = 0.0


@dataclass
class SyntheticConfig:
    """rnnlab.tasks.AddingTask or CopyTask (the synthetic long-range tasks): inputs straight into the
    recurrent layer (no embedding), a linear read-out at the answer steps."""

    _target_: str = "rnnlab.tasks.AddingTask"
    cell: Cell = Cell.lstm
    nonlinearity: Nonlinearity = Nonlinearity.tanh
    backend: Backend = Backend.auto
    hidden_size: int = 64
    num_layers: int = 1
    spectral_radius: float | None = None


# ---- data: the LightningDataModule (``_target_``) and its arguments ---------------------------------------


@dataclass
class SentimentDataConfig:
    _target_: str = "rnnlab.data.SentimentDataModule"
    domain: Domain = Domain.movies
    path: str | None = None
    seed: int = II("seed")
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    batch_size: int = 64
    min_freq: int = 2
    max_vocab: int | None = None
    lowercase: bool = True
    max_len: int | None = None
    num_workers: int = 0


@dataclass
class CharLMDataConfig:
    _target_: str = "rnnlab.data.CharLMDataModule"
    corpus: Corpus = Corpus.austen
    path: str | None = None
    seed: int = II("seed")
    seq_len: int = 128
    batch_size: int = 64
    eval_batch_size: int | None = None
    split: list[float] = field(default_factory=lambda: [0.9, 0.05, 0.05])
    num_workers: int = 0


@dataclass
class TranslationDataConfig:
    _target_: str = "rnnlab.data.TranslationDataModule"
    path: str | None = None
    source: Language = Language.de
    seed: int = II("seed")
    split: list[float] = field(default_factory=lambda: [0.9, 0.05, 0.05])
    batch_size: int = 64
    min_freq: int = 2
    max_vocab: int | None = None
    lowercase: bool = False
    max_len: int = 50
    num_workers: int = 0


@dataclass
class AddingDataConfig:
    _target_: str = "rnnlab.data.AddingDataModule"
    seq_len: int = 100
    sizes: list[int] = field(default_factory=lambda: [10_000, 1_000, 1_000])
    batch_size: int = 64
    seed: int = II("seed")
    num_workers: int = 0


@dataclass
class CopyDataConfig:
    _target_: str = "rnnlab.data.CopyDataModule"
    delay: int = 50
    copy_len: int = 3
    num_symbols: int = 8
    sizes: list[int] = field(default_factory=lambda: [10_000, 1_000, 1_000])
    batch_size: int = 64
    seed: int = II("seed")
    num_workers: int = 0


# ---- optim: given to the task with the model arguments --------------------------------------------------


@dataclass
class OptimConfig:
    optimizer: Optimizer = Optimizer.adamw
    lr: float = 2e-3
    weight_decay: float = 0.0
    scheduler: Scheduler | None = None


SCHEMAS: dict[str, dict[str, Any]] = {
    "model": {
        "schema_classifier": ClassifierConfig,
        "schema_language_model": LanguageModelConfig,
        "schema_seq2seq": Seq2SeqConfig,
        "schema_synthetic": SyntheticConfig,
    },
    "data": {
        "schema_sentiment": SentimentDataConfig,
        "schema_char_lm": CharLMDataConfig,
        "schema_translation": TranslationDataConfig,
        "schema_adding": AddingDataConfig,
        "schema_copy": CopyDataConfig,
    },
    "optim": {"schema": OptimConfig},
}


def register() -> None:
    """Put the schemas in Hydra's ConfigStore (idempotent); the option files name them in their defaults."""
    store = ConfigStore.instance()
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=group, name=name, node=node)
