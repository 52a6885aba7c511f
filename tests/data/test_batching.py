import torch

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
