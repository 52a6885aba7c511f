"""Thin LightningModules, one per task: steps, metrics, optimizers; each module has a ``fit`` entry."""

from .common import RNNTask
from .generation import LanguageModelTask
from .sentiment import SentimentTask
from .synthetic import AddingTask, CopyTask
from .translation import TranslationTask

__all__ = ["AddingTask", "CopyTask", "LanguageModelTask", "RNNTask", "SentimentTask", "TranslationTask"]
