"""Seeded splits, length-bucketed batches and padding, shared by the DataModules.

Batches are padded to their longest sequence and carry a ``lengths`` tensor that goes straight to the
rnnlab layers (no pack/unpack per batch). Bucketing keeps sequences of similar length together, so little of
each batch is padding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch


def seeded_split(n: int, fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Indices 0..n-1 shuffled by ``seed`` and cut into len(fractions) parts (the last takes the rest)."""
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f < 0 for f in fractions):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {tuple(fractions)}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    parts, start = [], 0
    for k, fraction in enumerate(fractions):
        stop = n if k == len(fractions) - 1 else start + round(fraction * n)
        parts.append(sorted(order[start:stop]))
        start = stop
    return parts


class _Epoch:
    """Holds the epoch number; Lightning calls ``set_epoch`` on a batch sampler's ``.sampler`` each epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class BucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of indices with similar lengths; under distributed training, this rank's share of them.

    With ``shuffle``, each epoch draws a permutation from ``seed + epoch``, sorts each pool of
    ``batch_size * pool`` indices by length, cuts it into batches and shuffles the batch order; the order of
    an epoch therefore depends only on the seed and the epoch number (a resumed run sees the same batches).
    Without ``shuffle`` it sorts everything by length (for evaluation).

    Distributed: every rank builds the same batches (same seed and epoch) and takes every
    ``num_replicas``-th one from its ``rank`` on, so the ranks' batches are disjoint and every rank has as
    many (a rank with one batch fewer would leave the others waiting in DDP's all-reduce). As with
    DistributedSampler, batches that do not divide evenly are padded: the first batches are repeated to fill
    the last round, or with ``drop_last`` that round is dropped. Evaluation (no ``shuffle``, no
    ``drop_last``) instead cuts the sorted order into nearly equal batches of at most ``batch_size``, a
    whole number per rank, so the ranks together see every example exactly once; only a split too small for
    that (under 2 * num_replicas examples; at batch_size 1, any not divisible by num_replicas) is padded,
    and its repeated batches count twice in the metrics. ``num_replicas`` and ``rank`` default to
    torch.distributed's world size and rank when it is initialized, else 1 and 0 (no sharding).

    Lightning must not replace the sampler (``Trainer(use_distributed_sampler=False)``, as in
    conf/trainer/ddp.yaml). The ``drop_last`` attribute is private on purpose: Lightning rebuilds a batch
    sampler that has both ``batch_size`` and ``drop_last`` as ``cls(its_sampler, batch_size=, drop_last=)``,
    which would put its sampler in the place of ``lengths``. Without it, Lightning raises an error that asks
    for ``use_distributed_sampler=False`` instead, and ``trainer.predict`` keeps this sampler as it is.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool: int = 50,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if isinstance(lengths, torch.utils.data.Sampler):
            raise TypeError(
                f"BucketBatchSampler takes the examples' lengths, got a {type(lengths).__name__}: was it "
                "rebuilt around a (distributed) sampler? It shards itself across ranks; with Lightning set "
                "Trainer(use_distributed_sampler=False)."
            )
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if num_replicas is None:
            num_replicas = torch.distributed.get_world_size() if distributed else 1
        if rank is None:
            rank = torch.distributed.get_rank() if distributed else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas={num_replicas}), got {rank}")
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.seed, self.pool = batch_size, shuffle, seed, pool
        self._drop_last = drop_last  # not `drop_last`: see the class docstring
        self.num_replicas, self.rank = num_replicas, rank
        self.sampler = _Epoch()

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _all_batches(self) -> list[list[int]]:
        """The batches of the current epoch over all ranks, the same on every rank."""
        n = len(self.lengths)
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: self.lengths[i])
            cuts = self.num_replicas * math.ceil(n / (self.batch_size * self.num_replicas))
            if self.num_replicas > 1 and not self._drop_last and cuts <= n:
                bounds = [n * k // cuts for k in range(cuts + 1)]  # sizes differ by at most one
                return [order[a:b] for a, b in itertools.pairwise(bounds)]
            pools = [order]
        else:
            generator = torch.Generator().manual_seed(self.seed + self.sampler.epoch)
            order = torch.randperm(n, generator=generator).tolist()
            size = self.batch_size * self.pool
            pools = [sorted(order[i : i + size], key=lambda i: self.lengths[i]) for i in range(0, n, size)]
        batches = [p[i : i + self.batch_size] for p in pools for i in range(0, len(p), self.batch_size)]
        if self._drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def _batches(self) -> list[list[int]]:
        """This rank's batches: every ``num_replicas``-th, after padding or dropping to a whole round."""
        batches = self._all_batches()
        extra = len(batches) % self.num_replicas
        if extra and self._drop_last:
            batches = batches[: len(batches) - extra]
        elif extra:
            batches += [batches[i % len(batches)] for i in range(self.num_replicas - extra)]
        return batches[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())


def pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) padded ids and (B,) lengths; T is the longest length in the batch."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    out = torch.full((len(sequences), int(lengths.max())), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out, lengths
