"""Sentiment classification (many-to-one) as a LightningModule, and ``fit`` to train it from code.

Metrics: ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``val/f1``, ``test/acc``, ``test/f1``
(accuracy: the fraction of correct predictions; F1 of the positive class for two classes, macro F1
otherwise).

Example::

    from rnnlab.tasks import sentiment
    results = sentiment.fit("runs/sentiment-lstm", cell="lstm", max_minutes=10)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
import torchmetrics

from ..data.sentiment import SentimentDataModule
from ..models.classifier import PRESETS, SentimentClassifier
from .common import RNNTask, start_run, sync, train_and_test


class SentimentTask(RNNTask):
    """A :class:`~rnnlab.models.SentimentClassifier` trained with cross-entropy.

    ``preset`` (e.g. ``"article_lstm"``) takes the model's shape from ``rnnlab.models.classifier.PRESETS``;
    the other model arguments then override it only where they are given explicitly.
    """

    monitor = "val/acc"

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
        embedding_dropout: float = 0.2,
        single_bias: bool = False,
        backend: str = "auto",
        preset: str | None = None,
        optimizer: str = "adamw",
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        scheduler: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        model_args = dict(
            vocab_size=vocab_size,
            num_classes=num_classes,
            embedding_dim=embedding_dim,
            hidden_size=hidden_size,
            num_layers=num_layers,
            cell=cell,
            nonlinearity=nonlinearity,
            bidirectional=bidirectional,
            pooling=pooling,
            dropout=dropout,
            embedding_dropout=embedding_dropout,
            single_bias=single_bias,
            backend=backend,
        )
        if preset is not None:
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
            model_args.update({k: v for k, v in PRESETS[preset].items() if k != "vocab_size"})
        self.model = SentimentClassifier(**model_args)
        task = "binary" if model_args["num_classes"] == 2 else "multiclass"
        classes = {} if task == "binary" else {"num_classes": model_args["num_classes"]}
        for stage in ("train", "val", "test"):  # the fraction of correct predictions, whatever the classes
            setattr(self, f"{stage}_acc", torchmetrics.Accuracy(task=task, average="micro", **classes))
        for stage in ("val", "test"):
            average = {} if task == "binary" else {"average": "macro"}
            setattr(self, f"{stage}_f1", torchmetrics.F1Score(task=task, **classes, **average))
        self._binary = task == "binary"

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(tokens, lengths)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch["tokens"], batch["lengths"])  # (B, C)
        loss = F.cross_entropy(logits, batch["labels"])
        preds = logits.argmax(-1)
        size = len(batch["labels"])
        self.log(
            f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=size, **sync(stage)
        )
        metric = getattr(self, f"{stage}_acc")
        metric(preds, batch["labels"])
        self.log(f"{stage}/acc", metric, on_step=False, on_epoch=True, batch_size=size, prog_bar=True)
        if stage != "train":
            f1 = getattr(self, f"{stage}_f1")
            f1(preds, batch["labels"])
            self.log(f"{stage}/f1", f1, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def predict_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self(batch["tokens"], batch["lengths"]).softmax(-1)


def fit(
    out_dir: str | Path,
    cell: str = "lstm",
    domain: str = "movies",
    path: str | None = None,
    seed: int = 0,
    max_epochs: int = 15,
    max_minutes: float | None = 10.0,
    batch_size: int = 64,
    min_freq: int = 2,
    gradient_clip_val: float = 1.0,
    threads: int | None = 2,
    **model_args,
) -> dict:
    """Train on a seeded split, keep the best ``val/acc`` checkpoint, test it; returns the test metrics.

    Writes ``out_dir/metrics.csv`` (the learning curve), ``split.json`` (seed, sizes, line numbers of each
    split), ``results.json`` and ``checkpoints/best.ckpt``. ``model_args`` go to :class:`SentimentTask`.
    """
    out_dir = start_run(out_dir, seed, threads)
    dm = SentimentDataModule(domain=domain, path=path, seed=seed, batch_size=batch_size, min_freq=min_freq)
    dm.setup("fit")
    dm.save_split(out_dir / "split.json")
    task = SentimentTask(vocab_size=dm.vocab_size, cell=cell, **model_args)
    results = train_and_test(
        task,
        dm,
        out_dir,
        monitor="val/acc",
        max_epochs=max_epochs,
        max_minutes=max_minutes,
        gradient_clip_val=gradient_clip_val,
    )
    results.update(cell=cell, seed=seed, parameters=sum(p.numel() for p in task.parameters()))
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results
