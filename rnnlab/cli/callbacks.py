"""Callbacks for rnnlab-train: fail fast on divergence, a checkpoint that carries its config (both added to
every run), and an epoch timer to add where time matters."""

from __future__ import annotations

import math
import time

import lightning as L


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite: the run cannot recover and is stopped."""


class DivergenceGuard(L.Callback):
    """Raise :class:`DivergedError` at the first non-finite training loss.

    Lightning would otherwise keep training on NaN weights (or stop quietly); raising ends the run with a
    message that names the step, so a sweep records the trial as failed and goes on.
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        self.every = max(1, check_every_n_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            raise DivergedError(
                f"training diverged: loss is {value} at step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}, batch {batch_idx}); "
                "lower optim.lr, or keep trainer.gradient_clip_val set"
            )


class ConfigInCheckpoint(L.Callback):
    """Store the run's resolved config in every checkpoint (key ``rnnlab_config``), so that rnnlab-eval and
    rnnlab-sample rebuild the data and the model from the checkpoint alone, wherever it was moved."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["rnnlab_config"] = self.config


class EpochTimer(L.Callback):
    """Log ``time/train_epoch_seconds``: the wall time of an epoch's training batches (forward, backward,
    optimizer step), without the validation that runs inside the epoch.

    Add it to a run with ``+callbacks.epoch_timer._target_=rnnlab.cli.callbacks.EpochTimer``.
    """

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seconds += time.perf_counter() - self.started

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("time/train_epoch_seconds", self.seconds, on_epoch=True, batch_size=1)
