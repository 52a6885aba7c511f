"""What rnnlab-eval and rnnlab-sample share: a checkpoint written by rnnlab-train, opened with its config."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf


class Run:
    """A checkpoint, the resolved config stored in it, and the task and data built from both.

    ``overrides`` (``key=value``, e.g. ``data.path=my.tsv``) change the stored config before anything is
    built: evaluate on another file, with another batch size, on the CPU... ``model.*`` and ``optim.*``
    overrides are arguments of the task: those the checkpoint's weights still fit are applied
    (``model.backend=cudnn``, ``model.beam_size=8``); one that changes the weights' shapes or names
    (``model.hidden_size``, ``model.num_layers``), or that the task does not take, raises SystemExit naming
    it. None is ignored.
    """

    def __init__(self, checkpoint: str | Path, overrides: list[str] | None = None) -> None:
        self.path = Path(checkpoint)
        if not self.path.is_file():
            raise SystemExit(f"{self.path}: no such checkpoint")
        self.state: dict[str, Any] = torch.load(self.path, map_location="cpu", weights_only=False)
        if "rnnlab_config" not in self.state:
            raise SystemExit(f"{self.path}: no rnnlab_config in it; was it written by rnnlab-train?")
        stored = OmegaConf.create(self.state["rnnlab_config"])
        config = stored
        if overrides:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
        self.config: dict[str, Any] = OmegaConf.to_container(config, resolve=True)
        self.task_class = get_class(self.config["model"]["_target_"])
        # The task's arguments the overrides change: checked against the weights now, applied by task().
        self.task_changes = self._task_changes(OmegaConf.to_container(stored, resolve=True))

    def task(self) -> L.LightningModule:
        """The checkpoint's task, its weights loaded, with the ``model.*`` / ``optim.*`` overrides applied."""
        task = self.task_class.load_from_checkpoint(self.path, map_location="cpu", **self.task_changes)
        return task.eval()

    def _task_changes(self, stored: dict[str, Any]) -> dict[str, Any]:
        """``{argument: value}`` for each ``model.*`` / ``optim.*`` key whose value the overrides changed;
        SystemExit for one the task does not take or whose task no longer fits the checkpoint's weights."""
        target = stored["model"]["_target_"]
        if self.config["model"]["_target_"] != target:
            raise SystemExit(f"model._target_ cannot change: {self.path} holds a {target}")
        changes: dict[str, tuple[str, Any]] = {}  # argument -> (the override's key, its value)
        for group in ("model", "optim"):
            before, after = stored.get(group) or {}, self.config.get(group) or {}
            for name, value in after.items():
                if name != "_target_" and (name not in before or before[name] != value):
                    changes[name] = (f"{group}.{name}", value)
        hparams = dict(self.state.get("hyper_parameters") or {})
        # Every argument of the task: the ones it saved (including those a subclass passes on in **kwargs).
        parameters = inspect.signature(self.task_class.__init__).parameters.values()
        arguments = hparams.keys() | {
            p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        saved = {name: tuple(value.shape) for name, value in self.state["state_dict"].items()}
        for name, (key, value) in changes.items():
            if name not in arguments:
                raise SystemExit(f"{key}: {self.task_class.__name__} takes no argument {name!r}")
            with torch.device("meta"):  # shapes only: nothing is allocated
                changed = self.task_class(**{**hparams, name: value})
            shapes = {k: tuple(v.shape) for k, v in changed.state_dict().items()}
            if shapes != saved:
                raise SystemExit(
                    f"{key}={value} does not fit the weights of {self.path} "
                    f"({_first_difference(saved, shapes)}): only model overrides that keep the trained "
                    "parameters apply to a checkpoint (e.g. model.backend, model.beam_size)"
                )
        return {name: value for name, (_, value) in changes.items()}

    def datamodule(self, setup: bool = True) -> L.LightningDataModule:
        """The run's DataModule with the tokenizer(s) of the checkpoint (not rebuilt from the data)."""
        from ..experiment import build_datamodule

        datamodule = build_datamodule(self.config["data"])
        saved = self.state.get(type(datamodule).__qualname__)
        if saved:
            datamodule.load_state_dict(saved)
        if setup:
            datamodule.setup("test")
        return datamodule

    def datamodule_state(self) -> dict:
        """The DataModule's saved state (its tokenizers), without reading any data."""
        target = self.config["data"]["_target_"].rsplit(".", 1)[-1]
        return self.state.get(target, {})


def _first_difference(saved: dict[str, tuple], built: dict[str, tuple]) -> str:
    """The first parameter whose shape differs, or that only one of the two state dicts has."""
    for name, shape in saved.items():
        if name not in built:
            return f"{name} would be missing"
        if shape != built[name]:
            return f"{name}: {list(shape)} in the checkpoint, {list(built[name])} with the override"
    return f"{next(name for name in built if name not in saved)} would be new"
