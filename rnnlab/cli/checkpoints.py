"""What rnnlab-eval and rnnlab-sample share: a checkpoint written by rnnlab-train, opened with its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf


class Run:
    """A checkpoint, the resolved config stored in it, and the task and data built from both.

    ``overrides`` (``key=value``, e.g. ``data.path=my.tsv``) change the stored config before anything is
    built: evaluate on another file, with another batch size, on the CPU...
    """

    def __init__(self, checkpoint: str | Path, overrides: list[str] | None = None) -> None:
        self.path = Path(checkpoint)
        if not self.path.is_file():
            raise SystemExit(f"{self.path}: no such checkpoint")
        self.state: dict[str, Any] = torch.load(self.path, map_location="cpu", weights_only=False)
        if "rnnlab_config" not in self.state:
            raise SystemExit(f"{self.path}: no rnnlab_config in it; was it written by rnnlab-train?")
        config = OmegaConf.create(self.state["rnnlab_config"])
        if overrides:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist(list(overrides)))
        self.config: dict[str, Any] = OmegaConf.to_container(config, resolve=True)
        self.task_class = get_class(self.config["model"]["_target_"])

    def task(self) -> L.LightningModule:
        return self.task_class.load_from_checkpoint(self.path, map_location="cpu").eval()

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
