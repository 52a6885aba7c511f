"""Seeded splits, length-bucketed batches and padding, shared by the DataModules.

Batches are padded to their longest sequence and carry a ``lengths`` tensor that goes straight to the
rnnlab layers (no pack/unpack per batch). Bucketing keeps sequences of similar length together, so little of
each batch is padding.
"""

from __future__ import annotations

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
    """Batches of indices with similar lengths.

    With ``shuffle``, each epoch draws a permutation from ``seed + epoch``, sorts each pool of
    ``batch_size * pool`` indices by length, cuts it into batches and shuffles the batch order; the order of
    an epoch therefore depends only on the seed and the epoch number (a resumed run sees the same batches).
    Without ``shuffle`` it sorts everything by length (for evaluation).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        pool: int = 50,
        drop_last: bool = False,
    ) -> None:
        self.lengths = list(lengths)
        self.batch_size, self.shuffle, self.seed, self.pool, self.drop_last = (
            batch_size,
            shuffle,
            seed,
            pool,
            drop_last,
        )
        self.sampler = _Epoch()

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: self.lengths[i])
            pools = [order]
        else:
            generator = torch.Generator().manual_seed(self.seed + self.sampler.epoch)
            order = torch.randperm(n, generator=generator).tolist()
            size = self.batch_size * self.pool
            pools = [sorted(order[i : i + size], key=lambda i: self.lengths[i]) for i in range(0, n, size)]
        batches = [p[i : i + self.batch_size] for p in pools for i in range(0, len(p), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

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
