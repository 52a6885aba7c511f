"""Character-level language modelling (one-to-many) as a LightningModule, sampling helpers, and ``fit``.

Training is truncated BPTT over a long stream: :class:`~rnnlab.data.CharLMDataModule` lays each split out
so that consecutive batches continue each other row by row, and the task carries the recurrent state,
detached, from one batch to the next (reset at the start of every epoch and every evaluation pass).

Metrics: ``{train,val,test}/loss`` (cross-entropy in nats per character) and ``{train,val,test}/bpc``
(bits per character = nats / ln 2).

Example::

    from rnnlab.tasks import generation
    results = generation.fit("runs/austen", corpus="austen", max_minutes=30)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import abc
from ..data.generation import CharLMDataModule
from ..data.tokenizers import CharTokenizer
from ..models.language_model import LanguageModel, detach_state
from .common import RNNTask, start_run, sync, train_and_test


class LanguageModelTask(RNNTask):
    """A :class:`~rnnlab.models.LanguageModel` trained on next-character cross-entropy."""

    monitor = "val/loss"

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 512,
        num_layers: int = 2,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        dropout: float = 0.1,
        tie_weights: bool = False,
        backend: str = "auto",
        optimizer: str = "adamw",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        scheduler: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = LanguageModel(
            vocab_size,
            embedding_dim,
            hidden_size,
            num_layers,
            cell,
            nonlinearity,
            dropout,
            tie_weights,
            backend,
        )
        self._carry: dict[str, object] = {"train": None, "val": None, "test": None}

    def forward(self, tokens: torch.Tensor, state=None):
        return self.model(tokens, state)

    def on_train_epoch_start(self) -> None:
        self._carry["train"] = None

    def on_validation_epoch_start(self) -> None:
        self._carry["val"] = None

    def on_test_epoch_start(self) -> None:
        self._carry["test"] = None

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        logits, state = self(batch["input"], self._carry[stage])  # (B, T, V)
        self._carry[stage] = detach_state(state)
        loss = F.cross_entropy(logits.flatten(0, 1), batch["target"].flatten())  # nats per character
        chars = batch["target"].numel()  # the epoch value is the mean over characters
        self.log(
            f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=chars, prog_bar=True,
            **sync(stage),
        )  # fmt: skip
        self.log(
            f"{stage}/bpc", loss / math.log(2), on_step=False, on_epoch=True, batch_size=chars, **sync(stage)
        )
        return loss


def sample(
    model: LanguageModel,
    tokenizer: CharTokenizer,
    prompt: str = "",
    max_chars: int = 500,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    stop_at: str | None = None,
) -> str:
    """Text continuing ``prompt`` (not included). ``stop_at`` (e.g. "\\n\\n", a tune's end) ends it early."""
    generator = torch.Generator().manual_seed(seed)
    stop = None
    if stop_at:
        stop_ids = tokenizer.encode(stop_at)

        def stop(generated: list[int]) -> bool:
            return generated[-len(stop_ids) :] == stop_ids

    start = tokenizer.index.get("\n", 0)
    ids = model.sample(
        tokenizer.encode(prompt), max_chars, temperature, top_k, top_p, generator, stop, start_id=start
    )
    return tokenizer.decode(ids)


def sample_tunes(
    model: LanguageModel,
    tokenizer: CharTokenizer,
    count: int = 100,
    headers: list[tuple[str, str]] | None = None,
    max_chars: int = 1200,
    temperature: float = 0.8,
    top_k: int | None = None,
    top_p: float | None = 0.95,
    seed: int = 0,
) -> list[tuple[str, bool]]:
    """``count`` tunes, each sampled from nothing but a header (key, metre): (tune text, whether it parses).

    ``headers`` cycles over (key, metre) pairs; by default the commonest in O'Neill's collection.
    """
    headers = headers or [("G", "6/8"), ("D", "C|"), ("A", "2/4"), ("Em", "3/4"), ("D", "6/8"), ("G", "C")]
    tunes = []
    for i in range(count):
        key, metre = headers[i % len(headers)]
        head = abc.header(key=key, metre=metre, title=f"Sample {i + 1}", number=i + 1)
        body = sample(model, tokenizer, head, max_chars, temperature, top_k, top_p, seed + i, stop_at="\n\n")
        tune = head + body.rstrip("\n") + "\n"
        tunes.append((tune, abc.parses(tune)))
    return tunes


def fit(
    out_dir: str | Path,
    corpus: str = "austen",
    path: str | list[str] | None = None,
    cell: str = "lstm",
    seed: int = 0,
    max_epochs: int = 20,
    max_minutes: float | None = 30.0,
    seq_len: int = 128,
    batch_size: int = 64,
    val_check_interval: int | float | None = None,
    gradient_clip_val: float = 1.0,
    threads: int | None = 2,
    **model_args,
) -> dict:
    """Train a character model with truncated BPTT, keep the best ``val/loss`` checkpoint, test it.

    Writes ``out_dir/metrics.csv``, ``split.json``, ``results.json`` and ``checkpoints/best.ckpt``;
    ``model_args`` go to :class:`LanguageModelTask`. Returns the test metrics.
    """
    out_dir = start_run(out_dir, seed, threads)
    dm = CharLMDataModule(corpus=corpus, path=path, seq_len=seq_len, batch_size=batch_size, seed=seed)
    dm.setup("fit")
    dm.save_split(out_dir / "split.json")
    task = LanguageModelTask(vocab_size=dm.vocab_size, cell=cell, **model_args)
    results = train_and_test(
        task,
        dm,
        out_dir,
        monitor="val/loss",
        mode="min",
        max_epochs=max_epochs,
        max_minutes=max_minutes,
        gradient_clip_val=gradient_clip_val,
        val_check_interval=val_check_interval,
    )
    results.update(corpus=corpus, cell=cell, seed=seed, parameters=sum(p.numel() for p in task.parameters()))
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results


def load(checkpoint: str | Path) -> tuple[LanguageModel, CharTokenizer]:
    """The model (in eval mode) and the tokenizer saved in a checkpoint written by ``fit``."""
    task = LanguageModelTask.load_from_checkpoint(checkpoint, map_location="cpu")
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["CharLMDataModule"]
    return task.model.eval(), CharTokenizer.from_dict(state["tokenizer"])
