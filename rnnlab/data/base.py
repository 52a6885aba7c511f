"""What the task DataModules share: one loader per stage, the recorded split, a length-bucketed loader."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

from .batching import BucketBatchSampler
from .io import CorpusError


class SplitDataModule(L.LightningDataModule):
    """Base of the DataModules: subclasses build their seeded train/val/test split in ``setup`` and define
    ``split_summary()`` (seed, sizes, where each split came from) and ``_loader(stage)``."""

    def split_summary(self) -> dict:
        raise NotImplementedError

    def save_split(self, path: str | Path) -> None:
        """Write ``split_summary()`` as JSON, so a run records exactly which examples it trained on."""
        Path(path).write_text(json.dumps(self.split_summary()))

    def _loader(self, stage: str) -> torch.utils.data.DataLoader:
        raise NotImplementedError

    def _refuse_empty_splits(self, file: str | Path, sizes: dict[str, int], unit: str = "examples") -> None:
        """Raise CorpusError for a split that came out empty although its fraction in ``self.split`` is
        above 0 (a file too small to split so): training would run without validation, or test nothing.
        A fraction of exactly 0 asks for an empty split (``data.split=[0,0,1]`` evaluates a whole file)."""
        for (stage, size), fraction in zip(sizes.items(), self.split, strict=True):
            if size == 0 and fraction > 0:
                cut = ", ".join(f"{s} {n}" for s, n in sizes.items())
                raise CorpusError(
                    file,
                    f"the {stage} split is empty: {sum(sizes.values())} {unit} split by the fractions "
                    f"{list(self.split)} (data.split) gave {cut}; use a larger file, or other fractions "
                    f"(a fraction of 0 leaves its split empty on purpose)",
                )

    def _bucketed_loader(
        self, data: list, lengths: list[int], stage: str, collate: Callable
    ) -> torch.utils.data.DataLoader:
        """Batches of similar lengths (less padding), shuffled by seed and epoch for training only. Under DDP
        the sampler deals each rank its own share (it reads the rank from torch.distributed, initialized by
        the time Lightning asks for a loader), so the Trainer needs ``use_distributed_sampler=False``."""
        sampler = BucketBatchSampler(lengths, self.batch_size, shuffle=stage == "train", seed=self.seed)
        return torch.utils.data.DataLoader(
            data,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            generator=self._generator(),
        )

    def _generator(self) -> torch.Generator:
        """A DataLoader draws a seed for its workers from this generator each time it is iterated. Without
        one it draws from torch's global generator, so the dropout masks of training would depend on how
        many loaders were iterated before: a run resumed from a checkpoint (no sanity check, no earlier
        epochs) would then draw other masks than the uninterrupted run."""
        return torch.Generator().manual_seed(self.seed)

    def train_dataloader(self):
        return self._loader("train")

    def val_dataloader(self):
        return self._loader("val")

    def test_dataloader(self):
        return self._loader("test")
