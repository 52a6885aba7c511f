"""Vendored corpora, tokenizers and LightningDataModules for the three sequence tasks."""

from .abc import check_tune
from .generation import CharLMDataModule
from .io import CorpusError, read_lines, read_tsv
from .sentiment import SentimentDataModule
from .synthetic import AddingDataModule, CopyDataModule
from .tokenizers import CharTokenizer, WordTokenizer
from .translation import TranslationDataModule

__all__ = [
    "AddingDataModule",
    "CharLMDataModule",
    "CharTokenizer",
    "CopyDataModule",
    "CorpusError",
    "SentimentDataModule",
    "TranslationDataModule",
    "WordTokenizer",
    "check_tune",
    "read_lines",
    "read_tsv",
]
