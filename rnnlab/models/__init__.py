"""Plain nn.Modules: a sequence classifier, an encoder-decoder with attention, a language model."""

from .classifier import SentimentClassifier
from .language_model import LanguageModel
from .seq2seq import Seq2Seq
from .synthetic import SyntheticModel

__all__ = ["LanguageModel", "Seq2Seq", "SentimentClassifier", "SyntheticModel"]
