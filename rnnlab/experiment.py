"""Experiments from code: the config the command line builds, and the run rnnlab-train does.

Example (a notebook)::

    import rnnlab
    cfg = rnnlab.compose(["experiment=sentiment_gru", "model.hidden_size=64", "debug=limit"])
    metrics, task = rnnlab.train(cfg)      # metrics["test/acc"], task is the fitted LightningModule

``compose`` leaves no Hydra state behind, so it can be called any number of times in one process.
Each run writes into ``cfg.paths.output_dir``: ``metrics.csv``, ``curve.png``, ``checkpoints/best.ckpt`` and
``last.ckpt``, ``config.yaml`` (the resolved config) and ``result.json`` (status ok/failed, the error,
the metrics), which is what ``rnnlab-report`` reads.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import time
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from .cli import schemas
from .cli.callbacks import ConfigInCheckpoint

log = logging.getLogger("rnnlab.experiment")

CONFIG_MODULE = "rnnlab.conf"
# Set while a run fits: the ranks Lightning starts for DDP read the parent's resolved config from this file
# instead of composing their own (which would make new dated folders, or re-run a whole sweep after -m).
RUN_CONFIG_ENV = "RNNLAB_RUN_CONFIG"
# Overrides for runs from scripts: no progress bar, no parameter table.
QUIET = (
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
)


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """The config ``rnnlab-train <overrides>`` would run, with every interpolation resolved.

    ``paths.output_dir`` is the folder the command line would create (``hydra.run.dir``) unless an
    override sets it. Raises Hydra's errors for a misspelt key, a wrong type or an unknown group option.
    """
    schemas.register()
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        full = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    # Give ${hydra:runtime.output_dir} the value a command-line run gets: the run folder, made absolute.
    run_dir = Path(OmegaConf.select(full, "hydra.run.dir")).absolute()
    OmegaConf.update(full, "hydra.runtime.output_dir", str(run_dir), force_add=True)
    previous = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(full)
    try:
        cfg = OmegaConf.masked_copy(full, [key for key in full if key != "hydra"])
        OmegaConf.resolve(cfg)
    finally:
        HydraConfig.instance().cfg = previous
    return cfg


def multirun(overrides: Sequence[str], sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Run the sweep ``rnnlab-train -m <overrides>`` (in a subprocess: Hydra's multirun owns its process)
    with its trials in ``sweep_dir``; return them as rnnlab-report reads them (one dict per trial:
    ``status``, ``metrics``, ``config``, ``overrides``...). A failed trial is in the list; a failed sweep
    raises ``CalledProcessError``.

    Only this sweep's trials: Hydra numbers a sweep's trial folders from 0 and rewrites each one's
    ``.hydra/overrides.yaml``, but leaves the higher-numbered folders of an earlier, larger sweep into the
    same ``sweep_dir``; those are left out, with a warning naming them."""
    import subprocess
    import sys

    from .cli.report import load_runs

    def stamps() -> dict[str, int]:  # trial folder -> when its overrides were written
        return {
            p.parent.parent.name: p.stat().st_mtime_ns
            for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")
        }

    before = stamps()
    command = [sys.executable, "-m", "rnnlab.cli.train", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    written = {name for name, stamp in stamps().items() if before.get(name) != stamp}
    runs = load_runs(sweep_dir)
    stale = [run["run"] for run in runs if run["run"] not in written]
    if stale:
        warnings.warn(
            f"{sweep_dir}: trial folders {', '.join(stale)} are from an earlier sweep and are left out",
            stacklevel=2,
        )
    return [run for run in runs if run["run"] in written]


def train(cfg: DictConfig) -> tuple[dict[str, Any], L.LightningModule]:
    """Fit ``cfg`` (from :func:`compose` or rnnlab-train), test the best checkpoint; return (metrics, task).

    The metrics are the test metrics (``test/...``), ``<monitor>_best`` (the best validation score, which
    sweeps optimise), ``best_checkpoint`` (the checkpoint tested), ``last_checkpoint``, ``epochs``,
    ``steps``, ``train_seconds``, ``parameters`` and ``output_dir``. On rank 0, ``result.json`` in the run
    folder records the outcome, including a failure (and the error is raised again).

    ``train=false ckpt_path=<ckpt>`` tests the weights of that checkpoint, with this config's data and
    model (which must match the checkpoint's). ``train=false`` with ``test=true`` and no ``ckpt_path`` is
    an error, since it would test untrained weights; ``train=false test=false`` builds the task as
    initialised and returns it.
    """
    out = Path(cfg.paths.output_dir)
    started = time.time()
    try:
        with _leave_no_process_group():
            metrics, task = _fit_and_test(cfg, out)
    except BaseException as error:
        if rank_zero_only.rank == 0:
            write_result(out, cfg, "failed", error=error, seconds=time.time() - started)
        raise
    if rank_zero_only.rank == 0:
        write_result(out, cfg, "ok", metrics=metrics, seconds=time.time() - started)
    return metrics, task


def _fit_and_test(cfg: DictConfig, out: Path) -> tuple[dict[str, Any], L.LightningModule]:
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    fit, ckpt_path = config.get("train", True), config.get("ckpt_path")
    if not fit and config.get("test", True) and not ckpt_path:
        raise ValueError(
            "train=false with test=true needs ckpt_path=<checkpoint> (e.g. <run>/checkpoints/best.ckpt): "
            "without one the test would score untrained weights (or use rnnlab-eval <checkpoint>)"
        )
    out.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:
        (out / "config.yaml").write_text(OmegaConf.to_yaml(config))
    if config.get("threads"):
        torch.set_num_threads(config["threads"])
    L.seed_everything(config["seed"], workers=True)

    datamodule = build_datamodule(config["data"])
    datamodule.setup("fit")
    task = build_task(config, datamodule)
    callbacks = [instantiate(c) for c in (config.get("callbacks") or {}).values() if c]
    callbacks.append(ConfigInCheckpoint(config))
    loggers = [instantiate(c) for c in (config.get("logger") or {}).values() if c]
    if not loggers:
        callbacks = _without_learning_rate_monitor(callbacks)
    trainer_args = dict(config["trainer"])
    if ckpt_path:
        # The sanity check's validation batches would draw from the random state just restored from the
        # checkpoint, and the resumed run would then drift from an uninterrupted one; the model it would
        # check has been validated already.
        trainer_args["num_sanity_val_steps"] = 0
    trainer = L.Trainer(**trainer_args, callbacks=callbacks, logger=loggers or False)

    start = time.perf_counter()
    if fit:
        with ranks_share_config(out / "config.yaml"):
            trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    seconds = time.perf_counter() - start

    checkpoint = next((c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)), None)
    if fit:
        # The best checkpoint, not the last weights; fast_dev_run writes none, so it tests what it has.
        best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    else:
        best = ckpt_path  # nothing was fitted: the checkpoint given is the model tested
    metrics: dict[str, Any] = {}
    if config.get("test", True):
        tested = trainer.test(task, datamodule=datamodule, ckpt_path=best, verbose=False)
        metrics.update(tested[0] if tested else {})
    score = checkpoint.best_model_score if checkpoint is not None else None
    metrics.update(
        {
            f"{config['monitor']}_best": float(score) if score is not None else float("nan"),
            "best_checkpoint": best,
            "last_checkpoint": checkpoint.last_model_path or None if checkpoint is not None else None,
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "train_seconds": round(seconds, 2),
            "parameters": sum(p.numel() for p in task.parameters()),
            "output_dir": str(out),
        }
    )
    if config.get("plot", True) and fit and trainer.is_global_zero and (out / "metrics.csv").exists():
        plot_learning_curve(out, config["monitor"], config.get("name", ""))
    return metrics, task


def _without_learning_rate_monitor(callbacks: list[L.Callback]) -> list[L.Callback]:
    """``callbacks`` less the LearningRateMonitor, which Lightning refuses in a run without a logger
    (``logger=none``): the learning rate has nowhere to go."""
    kept = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if len(kept) < len(callbacks):
        log.info("no logger: the learning_rate_monitor callback is left out (it writes to the logger)")
    return kept


def build_datamodule(data: dict) -> L.LightningDataModule:
    """The DataModule named by ``data._target_``, with the other keys as arguments."""
    kwargs = {k: v for k, v in data.items() if k != "_target_"}
    if "split" in kwargs:
        kwargs["split"] = tuple(kwargs["split"])
    return get_class(data["_target_"])(**kwargs)


def build_task(config: dict, datamodule: L.LightningDataModule) -> L.LightningModule:
    """The task named by ``model._target_``, given the model and optimizer keys and, for each of its
    ``*vocab_size`` arguments, the DataModule's attribute of that name (built from the training split)."""
    cls = get_class(config["model"]["_target_"])
    kwargs = {k: v for k, v in config["model"].items() if k != "_target_"}
    kwargs.update(config.get("optim") or {})
    for name in inspect.signature(cls.__init__).parameters:
        if name.endswith("vocab_size") and name not in kwargs:
            kwargs[name] = vocab_size(datamodule, name)
    return cls(**kwargs)


def vocab_size(datamodule: L.LightningDataModule, name: str) -> int:
    """``datamodule.<name>`` (e.g. ``vocab_size``), or the length of the matching tokenizer
    (``src_vocab_size`` -> ``len(datamodule.src_tokenizer)``)."""
    if hasattr(datamodule, name):
        return getattr(datamodule, name)
    return len(getattr(datamodule, name.replace("vocab_size", "tokenizer")))


@contextmanager
def ranks_share_config(config_file: Path) -> Iterator[None]:
    """While it is active, processes started by Lightning's DDP launcher inherit ``RNNLAB_RUN_CONFIG`` and
    rnnlab-train runs them on this resolved config, in this run's folder (see ``rnnlab.cli.train``)."""
    previous = os.environ.get(RUN_CONFIG_ENV)
    os.environ[RUN_CONFIG_ENV] = str(Path(config_file).absolute())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(RUN_CONFIG_ENV, None)
        else:
            os.environ[RUN_CONFIG_ENV] = previous


@contextmanager
def _leave_no_process_group() -> Iterator[None]:
    """After a DDP run, tear down its process group and the variables Lightning's launcher put in the
    environment, so that the next run in this process (the next trial of a sweep) starts its own."""
    names = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")
    before = {name: os.environ.get(name) for name in names}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_result(
    out: Path,
    cfg: DictConfig,
    status: str,
    metrics: dict | None = None,
    error: BaseException | None = None,
    seconds: float = 0.0,
) -> Path:
    """``out/result.json``: status (ok / failed), the error, the metrics, the overrides and the config."""
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"status": status, "seconds": round(seconds, 2)}
    if error is not None:
        result["error"] = f"{type(error).__name__}: {error}"
        result["traceback"] = "".join(traceback.format_exception(error))[-4000:]
    result["metrics"] = {k: _jsonable(v) for k, v in (metrics or {}).items()}
    result["overrides"] = _overrides()
    result["config"] = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    path = out / "result.json"
    path.write_text(json.dumps(result, indent=1))
    return path


def _overrides() -> list[str]:
    if HydraConfig.initialized():
        return list(HydraConfig.get().overrides.task)
    return []


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; "nan" reads back with float()
    return value


def plot_learning_curve(out: Path, monitor: str, title: str = "") -> Path:
    """``out/curve.png`` from ``out/metrics.csv``: training loss per step, validation loss and the monitor."""
    from .tasks.curves import plot_curves

    panels = ["train/loss_step", "val/loss"] + ([monitor] if monitor != "val/loss" else [])
    png = out / "curve.png"
    plot_curves({title or out.name: out}, panels, png, title=title, x="step")
    return png
