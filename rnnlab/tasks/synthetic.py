"""The synthetic long-range tasks as LightningModules: the adding problem (regression) and copy-after-delay.

Both train a :class:`~rnnlab.models.synthetic.SyntheticModel` and read its answer off the last steps:
the adding problem's sum at the last step (MSE; predicting 1 always scores 1/6), the copy task's symbols
at the last ``copy_len`` steps (cross-entropy on those steps only; chance accuracy 1/K).

Metrics: ``{train,val,test}/loss``; the copy task adds ``{train,val,test}/acc`` (symbols copied right).

Example::

    from rnnlab.tasks import synthetic
    results = synthetic.fit("runs/adding", problem="adding", cell="lstm", seq_len=100)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.synthetic import AddingDataModule, CopyDataModule
from ..models.synthetic import SyntheticModel
from .common import RNNTask, start_run, sync, train_and_test


class SyntheticTask(RNNTask):
    """Base of the two tasks: the model and the optimizer settings; a subclass says what goes in and out
    (``sizes``) and where the answer is read (``_step``)."""

    def __init__(
        self,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        spectral_radius: float | None = None,
        backend: str = "auto",
        optimizer: str = "adam",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        scheduler: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # with the subclass's own arguments (vocab_size)
        input_size, output_size, tokens = self.sizes()
        self.model = SyntheticModel(
            input_size,
            output_size,
            hidden_size,
            num_layers,
            cell,
            nonlinearity,
            tokens,
            spectral_radius,
            backend,
        )

    def sizes(self) -> tuple[int, int, bool]:
        """(input size, outputs per step, whether the inputs are token ids)."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(inputs)


class AddingTask(SyntheticTask):
    """The adding problem: the sum of the two marked values, read at the last step, trained on MSE.
    Arguments: :class:`SyntheticTask`'s (lr 1e-2, the adding presets' rate)."""

    monitor = "val/loss"

    def sizes(self) -> tuple[int, int, bool]:
        return AddingDataModule.input_size, 1, False

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        prediction = self(batch["inputs"])[:, -1, 0]  # (B,)
        loss = F.mse_loss(prediction, batch["targets"])
        size = len(batch["targets"])
        self.log(
            f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=size, prog_bar=True,
            **sync(stage),
        )  # fmt: skip
        return loss


class CopyTask(SyntheticTask):
    """Copy after a delay: the remembered symbols, classified at the last ``copy_len`` steps.
    ``vocab_size`` tokens in (one-hot) and out; the other arguments are :class:`SyntheticTask`'s."""

    monitor = "val/acc"

    def __init__(self, vocab_size: int, lr: float = 5e-3, **kwargs) -> None:  # the copy presets' rate
        super().__init__(lr=lr, **kwargs)

    def sizes(self) -> tuple[int, int, bool]:
        return self.hparams.vocab_size, self.hparams.vocab_size, True

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        targets = batch["targets"]  # (B, L)
        logits = self(batch["inputs"])[:, -targets.shape[1] :]  # (B, L, V): the answer steps
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        acc = (logits.argmax(-1) == targets).float().mean()
        size = len(targets)
        self.log(
            f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True, batch_size=size, **sync(stage)
        )
        self.log(
            f"{stage}/acc", acc, on_step=False, on_epoch=True, batch_size=size, prog_bar=True, **sync(stage)
        )
        return loss


def fit(
    out_dir: str | Path,
    problem: str = "adding",
    cell: str = "lstm",
    seq_len: int = 100,
    delay: int = 50,
    seed: int = 0,
    max_epochs: int = 10,
    max_minutes: float | None = 10.0,
    batch_size: int = 64,
    gradient_clip_val: float | None = 1.0,
    threads: int | None = 2,
    **model_args,
) -> dict:
    """Train on the adding problem (``seq_len``) or the copy task (``delay``), keep the best validation
    checkpoint, test it. Writes ``out_dir/metrics.csv``, ``split.json``, ``results.json`` and
    ``checkpoints/best.ckpt``; ``model_args`` go to :class:`AddingTask` / :class:`CopyTask`."""
    if problem not in ("adding", "copy"):
        raise ValueError(f"problem must be 'adding' or 'copy', got {problem!r}")
    out_dir = start_run(out_dir, seed, threads)
    if problem == "adding":
        dm = AddingDataModule(seq_len=seq_len, batch_size=batch_size, seed=seed)
        task = AddingTask(cell=cell, **model_args)
    else:
        dm = CopyDataModule(delay=delay, batch_size=batch_size, seed=seed)
        task = CopyTask(dm.vocab_size, cell=cell, **model_args)
    dm.setup("fit")
    dm.save_split(out_dir / "split.json")
    results = train_and_test(
        task,
        dm,
        out_dir,
        monitor=task.monitor,
        mode="min" if problem == "adding" else "max",
        max_epochs=max_epochs,
        max_minutes=max_minutes,
        gradient_clip_val=gradient_clip_val,
    )
    results.update(
        problem=problem, cell=cell, seed=seed, parameters=sum(p.numel() for p in task.parameters())
    )
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results
