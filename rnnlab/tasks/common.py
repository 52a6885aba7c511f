"""What every task shares: the optimizer and scheduler, the gradient norm log, and checkpointed RNG state.

Gradient clipping is the Trainer's (``gradient_clip_val``, the article's remedy for exploding gradients);
the norm logged as ``train/grad_norm`` is the one before clipping, so explosions stay visible.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import grad_norm

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = (None, "cosine", "plateau", "step")


def sync(stage: str) -> dict[str, bool]:
    """``self.log``'s ``sync_dist`` for a value of ``stage``: under DDP each rank sees its own share of the
    batches, so an evaluation's epoch value is averaged over the ranks (training's per-step values are
    not: an all-reduce every step, for a progress display)."""
    return {"sync_dist": stage != "train"}


def gathered(items: list) -> list:
    """``items`` of every rank, in rank order, under torch.distributed (DDP); ``items`` itself otherwise.
    For metrics over a whole split that are not means of per-batch values, such as corpus BLEU."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return items
    parts: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, items)
    return [item for part in parts for item in part]


class RNNTask(L.LightningModule):
    """Base of the task modules. Subclasses call ``save_hyperparameters()`` and set ``self.model``; the
    optimizer settings are read from ``self.hparams`` (``optimizer``, ``lr``, ``weight_decay``,
    ``scheduler``, and ``monitor`` for the plateau scheduler)."""

    monitor = "val/loss"

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {hp.optimizer!r}")
        if hp.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {hp.scheduler!r}")
        if hp.optimizer == "sgd":  # plain SGD: a step is lr x the gradient, so an exploding gradient shows
            optimizer = torch.optim.SGD(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            cls = torch.optim.AdamW if hp.optimizer == "adamw" else torch.optim.Adam
            optimizer = cls(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler is None:
            return optimizer
        if hp.scheduler == "cosine":
            total = self.trainer.estimated_stepping_batches
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(total)))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        if hp.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        mode = "max" if self.monitor.endswith(("acc", "f1", "bleu")) else "min"
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}

    # One ``_step(batch, stage)`` serves every loop; a task whose evaluation differs overrides these.
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_before_optimizer_step(self, optimizer) -> None:
        norms = grad_norm(self, norm_type=2)
        if norms:
            self.log(
                "train/grad_norm", norms["grad_2.0_norm_total"], on_step=True, on_epoch=False, batch_size=1
            )

    # A resumed run must draw the same dropout masks as an uninterrupted one, so the RNG state travels in
    # the checkpoint (Lightning saves the model, optimizer and loops, not the generators).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": [v.tolist() if isinstance(v, np.ndarray) else v for v in np.random.get_state()],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        states = checkpoint.get("rng_states")
        if states is not None and self._trainer is not None:  # resuming a fit, not load_from_checkpoint
            torch.set_rng_state(states["torch"])
            random.setstate(states["python"])
            name, keys, *rest = states["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))


def start_run(out_dir: str | Path, seed: int, threads: int | None) -> Path:
    """The first steps of every ``fit``: cap the CPU threads, seed everything, make the output folder."""
    if threads:
        torch.set_num_threads(threads)
    L.seed_everything(seed, workers=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def train_and_test(
    task: L.LightningModule,
    datamodule: L.LightningDataModule,
    out_dir: str | Path,
    monitor: str,
    mode: str = "max",
    max_epochs: int = 10,
    max_minutes: float | None = None,
    gradient_clip_val: float | None = 1.0,
    val_check_interval: int | float | None = None,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    enable_progress_bar: bool = False,
    test: bool = True,
) -> dict:
    """Fit with a CSV log and a best-``monitor`` checkpoint in ``out_dir``, then test that checkpoint.

    Returns the test metrics, plus ``best_checkpoint``, ``best_score``, ``epochs`` and ``train_seconds``.
    ``out_dir/metrics.csv`` holds the learning curve.
    """
    import time

    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints", monitor=monitor, mode=mode, save_top_k=1, filename="best"
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        max_time={"minutes": max_minutes} if max_minutes else None,
        gradient_clip_val=gradient_clip_val,
        logger=CSVLogger(out_dir, name="", version=""),
        callbacks=[checkpoint],
        accelerator="auto",
        devices=1,
        deterministic=True,
        val_check_interval=val_check_interval,
        limit_train_batches=limit_train_batches,
        limit_val_batches=limit_val_batches,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule)
    seconds = time.perf_counter() - start
    results = {}
    if test:
        results = trainer.test(task, datamodule=datamodule, ckpt_path="best", verbose=False)[0]
    score = checkpoint.best_model_score
    results.update(
        best_checkpoint=str(checkpoint.best_model_path),
        best_score=float(score) if score is not None else float("nan"),
        epochs=trainer.current_epoch,
        train_seconds=seconds,
    )
    return results
