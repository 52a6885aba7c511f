import itertools

import pytest
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities.data import _update_dataloader
from torch.utils.data import DistributedSampler, SequentialSampler

from rnnlab.data.base import SplitDataModule
from rnnlab.data.batching import BucketBatchSampler, pad, seeded_split


def test_seeded_split_is_reproducible_disjoint_and_complete():
    a = seeded_split(101, (0.8, 0.1, 0.1), seed=3)
    b = seeded_split(101, (0.8, 0.1, 0.1), seed=3)
    c = seeded_split(101, (0.8, 0.1, 0.1), seed=4)
    assert a == b and a != c
    assert [len(p) for p in a] == [81, 10, 10]
    assert sorted(sum(a, [])) == list(range(101))


def test_bucket_sampler_covers_every_index_once_per_epoch():
    lengths = torch.randint(1, 40, (203,)).tolist()
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=1, pool=4)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(203))
    # within a pool the batches are sorted by length: little padding
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 15  # shuffled batches would spread over ~35


def test_bucket_sampler_order_depends_on_seed_and_epoch_only():
    lengths = list(range(1, 100))
    a, b = BucketBatchSampler(lengths, 8, seed=0), BucketBatchSampler(lengths, 8, seed=0)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.sampler.set_epoch(1)  # the hook Lightning calls
    assert list(a) == list(b)


def test_evaluation_order_is_sorted_and_fixed():
    lengths = [5, 1, 3, 2, 4]
    assert list(BucketBatchSampler(lengths, 2, shuffle=False)) == [[1, 3], [2, 4], [0]]


def test_pad():
    tokens, lengths = pad([[5, 6, 7], [8]], pad_id=0)
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]


# Distributed training: each rank builds the same batches and keeps every num_replicas-th one.


@pytest.mark.parametrize("n", [203, 208], ids=["13-batches", "14-batches"])
def test_training_shards_deal_out_the_same_epoch_in_turn(n):
    lengths = torch.randint(1, 40, (n,)).tolist()
    whole = BucketBatchSampler(lengths, 16, seed=5, pool=4)
    shards = [BucketBatchSampler(lengths, 16, seed=5, pool=4, num_replicas=2, rank=r) for r in (0, 1)]
    epochs = []
    for epoch in (0, 1):
        for s in (whole, *shards):
            s.set_epoch(epoch)
        batches = [list(s) for s in shards]
        assert len(batches[0]) == len(batches[1]) == len(shards[0]) == len(shards[1])
        dealt = [b for pair in zip(*batches, strict=True) for b in pair]
        # an odd number of batches is evened out by repeating the first, as DistributedSampler pads
        assert dealt == list(whole) + list(whole)[: len(whole) % 2]
        assert sorted(i for b in dealt[: len(whole)] for i in b) == list(range(n))
        epochs.append(batches)
    assert epochs[0] != epochs[1]


def test_training_shards_with_drop_last_drop_the_uneven_round():
    lengths = torch.randint(1, 40, (208,)).tolist()  # pools 64, 64, 64, 16: 13 full batches
    shards = [
        list(BucketBatchSampler(lengths, 16, pool=4, drop_last=True, num_replicas=2, rank=r)) for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 6
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen)) == 12 * 16 and all(len(b) == 16 for s in shards for b in s)


@pytest.mark.parametrize("n,num_replicas", [(203, 2), (203, 3), (1057, 2), (5, 2)])
def test_evaluation_shards_see_every_example_once_in_length_order(n, num_replicas):
    lengths = torch.randint(1, 40, (n,)).tolist()
    shards = [
        list(BucketBatchSampler(lengths, 16, shuffle=False, num_replicas=num_replicas, rank=r))
        for r in range(num_replicas)
    ]
    assert len({len(s) for s in shards}) == 1
    assert sorted(i for s in shards for b in s for i in b) == list(range(n))
    assert all(0 < len(b) <= 16 for s in shards for b in s)
    for s in shards:  # each rank's batches run from short to long
        assert all(max(lengths[i] for i in a) <= min(lengths[i] for i in b) for a, b in itertools.pairwise(s))


def test_evaluation_shards_pad_when_there_are_fewer_examples_than_batches():
    shards = [list(BucketBatchSampler([3, 1, 2], 1, shuffle=False, num_replicas=4, rank=r)) for r in range(4)]
    assert shards == [[[1]], [[2]], [[0]], [[1]]]  # the shortest example again, for the fourth rank


def test_ranks_default_to_torch_distributed(monkeypatch):
    assert (BucketBatchSampler([1, 2], 1).num_replicas, BucketBatchSampler([1, 2], 1).rank) == (1, 0)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 3)
    sampler = BucketBatchSampler([1, 2], 1)
    assert (sampler.num_replicas, sampler.rank) == (4, 3)
    assert BucketBatchSampler([1, 2], 1, num_replicas=2, rank=0).num_replicas == 2
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2], 1, num_replicas=2, rank=2)


# Lightning's use_distributed_sampler=True rebuilds custom batch samplers around a DistributedSampler.


class _Bucketed(SplitDataModule):
    batch_size, seed, num_workers = 4, 0, 0

    def _loader(self, stage):
        data = list(range(30))
        return self._bucketed_loader(data, [d % 7 + 1 for d in data], stage, torch.tensor)


@pytest.mark.parametrize("stage", ["train", "val"])
def test_lightning_cannot_rebuild_the_sampler_around_its_own(stage):
    loader = _Bucketed()._loader(stage)
    distributed = DistributedSampler(loader.dataset, num_replicas=2, rank=0, shuffle=stage == "train")
    mode = RunningStage.TRAINING if stage == "train" else RunningStage.VALIDATING
    with pytest.raises(TypeError, match="use_distributed_sampler=False"):
        _update_dataloader(loader, distributed, mode=mode)
    # the call Lightning makes to a batch sampler with `batch_size` and `drop_last` attributes
    with pytest.raises(TypeError, match="lengths, got a DistributedSampler"):
        BucketBatchSampler(distributed, batch_size=4, drop_last=False)


def test_lightning_predicts_with_the_sampler_unchanged():
    loader = _Bucketed()._loader("test")
    with pytest.warns(PossibleUserWarning, match="custom batch sampler"):
        new = _update_dataloader(loader, SequentialSampler(loader.dataset), mode=RunningStage.PREDICTING)
    assert list(new.batch_sampler) == list(loader.batch_sampler)
    assert [b.tolist() for b in new] == list(loader.batch_sampler)
