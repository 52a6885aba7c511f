"""Synthetic long-range tasks with a known answer: the adding problem and copying a sequence after a delay.

Both are generated, not read: each split is drawn once in ``setup`` from its own generator, seeded by
``seed`` and the split's index, so the same seed gives the same examples on any machine, and the three
splits never share a generator. The difficulty is the distance the answer has to be carried over, set by
``seq_len`` (adding) or ``delay`` (copy).

Adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015 and Arjovsky et al. 2016): each
step is two numbers, a value drawn uniformly from [0, 1) and a marker that is 1 at exactly two steps, one in
the first half of the sequence and one in the second, and 0 elsewhere. The target is the sum of the two
marked values. Predicting 1 whatever the input gives an MSE of Var(U + U) = 1/6 ≈ 0.167: a model under that
has learnt something.

Copy after a delay (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016): ``copy_len`` symbols
drawn from 1..K, then ``delay - 1`` blanks (token 0), a go marker (token K + 1) and ``copy_len`` more
blanks. The answer is the ``copy_len`` symbols, to be emitted at the last ``copy_len`` steps. A model that
has not learnt to remember guesses one symbol in K.

Example (a notebook)::

    dm = AddingDataModule(seq_len=100, seed=0)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))   # inputs (B, 100, 2) float, targets (B,) float
    dm = CopyDataModule(delay=50, copy_len=3, num_symbols=8)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))   # inputs (B, 56) long, targets (B, 3) long
"""

from __future__ import annotations

import torch

from .base import SplitDataModule

STAGES = ("train", "val", "test")


class TensorDictDataset(torch.utils.data.Dataset):
    """Examples ``{name: tensor[i]}`` from a dict of tensors that share their first dimension."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {name: t[i] for name, t in self.tensors.items()}


class SyntheticDataModule(SplitDataModule):
    """Base of the generated tasks: fixed-size splits drawn in ``setup``; subclasses define ``generate``.

    Args:
        sizes: examples in the train, val and test splits.
        batch_size: examples per batch; the training order is shuffled by ``seed`` and the epoch.
        seed: draws every example (split ``k`` uses the generator seeded ``seed * 1000 + k``).
    """

    def __init__(
        self,
        sizes: tuple[int, int, int] = (10_000, 1_000, 1_000),
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if len(sizes) != 3 or any(int(n) < 1 for n in sizes):
            raise ValueError(f"sizes must be three positive counts (train, val, test), got {tuple(sizes)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.sizes, self.batch_size = tuple(int(n) for n in sizes), batch_size
        self.seed, self.num_workers = seed, num_workers
        self.data: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def seq_len(self) -> int:
        """Steps per example (the length the recurrent layer runs over)."""
        raise NotImplementedError

    def generate(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` examples: ``{"inputs": (n, T, ...), "targets": (n, ...)}``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        for k, (s, n) in enumerate(zip(STAGES, self.sizes, strict=True)):
            self.data[s] = self.generate(n, torch.Generator().manual_seed(self.seed * 1000 + k))

    def split_summary(self) -> dict:
        self._require_setup()
        return {
            "task": type(self).__name__,
            "seed": self.seed,
            "seq_len": self.seq_len,
            "sizes": {s: n for s, n in zip(STAGES, self.sizes, strict=True)},
        }

    def _loader(self, stage: str) -> torch.utils.data.DataLoader:
        self._require_setup()
        return torch.utils.data.DataLoader(
            TensorDictDataset(self.data[stage]),
            batch_size=self.batch_size,
            shuffle=stage == "train",
            num_workers=self.num_workers,
            generator=self._generator(),
        )

    def _require_setup(self) -> None:
        if not self.data:
            raise RuntimeError("call setup() first: the examples are generated there")


class AddingDataModule(SyntheticDataModule):
    """The adding problem: ``inputs`` (B, T, 2) float (value, marker), ``targets`` (B,) float.

    Args:
        seq_len: T, at least 2; the two marked steps are drawn from [0, T//2) and [T//2, T).
        See :class:`SyntheticDataModule` for the others.
    """

    input_size = 2

    def __init__(
        self,
        seq_len: int = 100,
        sizes: tuple[int, int, int] = (10_000, 1_000, 1_000),
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        if seq_len < 2:
            raise ValueError(f"seq_len must be at least 2 (one marker in each half), got {seq_len}")
        super().__init__(sizes, batch_size, seed, num_workers)
        self._seq_len = seq_len

    @property
    def seq_len(self) -> int:
        return self._seq_len

    def generate(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        half = self._seq_len // 2
        values = torch.rand(n, self._seq_len, generator=generator)  # (n, T)
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, self._seq_len, (n,), generator=generator)
        markers = torch.zeros(n, self._seq_len)
        rows = torch.arange(n)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        targets = values[rows, first] + values[rows, second]  # (n,)
        return {"inputs": torch.stack([values, markers], dim=-1), "targets": targets}  # (n, T, 2), (n,)


class CopyDataModule(SyntheticDataModule):
    """Copy after a delay: ``inputs`` (B, T) token ids, ``targets`` (B, copy_len) the symbols to emit at the
    last ``copy_len`` steps; T = ``delay + 2 * copy_len``.

    Tokens: 0 blank, 1..``num_symbols`` the symbols, ``num_symbols + 1`` the go marker (``vocab_size`` =
    ``num_symbols + 2``). The go marker is the ``delay``-th step after the last symbol.

    Args:
        delay: steps from the last symbol to the go marker, at least 1.
        copy_len: symbols to remember.
        num_symbols: K, the alphabet; chance accuracy is 1/K.
        See :class:`SyntheticDataModule` for the others.
    """

    def __init__(
        self,
        delay: int = 50,
        copy_len: int = 3,
        num_symbols: int = 8,
        sizes: tuple[int, int, int] = (10_000, 1_000, 1_000),
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        if delay < 1 or copy_len < 1 or num_symbols < 2:
            raise ValueError(
                f"need delay >= 1, copy_len >= 1 and num_symbols >= 2; got delay={delay}, "
                f"copy_len={copy_len}, num_symbols={num_symbols}"
            )
        super().__init__(sizes, batch_size, seed, num_workers)
        self.delay, self.copy_len, self.num_symbols = delay, copy_len, num_symbols

    @property
    def seq_len(self) -> int:
        return self.delay + 2 * self.copy_len

    @property
    def vocab_size(self) -> int:
        return self.num_symbols + 2

    @property
    def go_id(self) -> int:
        return self.num_symbols + 1

    def generate(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        symbols = torch.randint(1, self.num_symbols + 1, (n, self.copy_len), generator=generator)  # (n, L)
        inputs = torch.zeros(n, self.seq_len, dtype=torch.long)  # (n, T), blanks
        inputs[:, : self.copy_len] = symbols
        inputs[:, self.copy_len + self.delay - 1] = self.go_id
        return {"inputs": inputs, "targets": symbols}
