"""The synthetic DataModules: seeded, split apart, and each example's answer is the one the task defines."""

import pytest
import torch

from rnnlab.data import AddingDataModule, CopyDataModule


def adding(seed=0, **kwargs):
    dm = AddingDataModule(seq_len=kwargs.pop("seq_len", 21), sizes=(64, 16, 16), batch_size=8, seed=seed)
    dm.setup()
    return dm


def copy(seed=0, **kwargs):
    dm = CopyDataModule(sizes=(64, 16, 16), batch_size=8, seed=seed, **kwargs)
    dm.setup()
    return dm


@pytest.mark.parametrize("make", [adding, copy], ids=["adding", "copy"])
def test_the_seed_decides_every_example_and_the_splits_differ(make):
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    for stage in ("train", "val", "test"):
        for name in ("inputs", "targets"):
            assert torch.equal(a.data[stage][name], b.data[stage][name]), (stage, name)
    assert not torch.equal(a.data["train"]["inputs"], c.data["train"]["inputs"])
    assert not torch.equal(a.data["val"]["inputs"], a.data["test"]["inputs"][: len(a.data["val"]["inputs"])])
    assert a.split_summary()["sizes"] == {"train": 64, "val": 16, "test": 16}


@pytest.mark.parametrize("seq_len", [2, 21, 100])
def test_adding_marks_one_step_in_each_half_and_sums_their_values(seq_len):
    dm = adding(seq_len=seq_len)
    inputs, targets = dm.data["train"]["inputs"], dm.data["train"]["targets"]  # (N, T, 2), (N,)
    assert inputs.shape == (64, seq_len, 2) and targets.shape == (64,)
    values, markers = inputs[..., 0], inputs[..., 1]
    half = seq_len // 2
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
    assert set(markers.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close((values * markers).sum(1), targets)
    assert ((values >= 0) & (values < 1)).all()


def test_adding_baseline_is_one_sixth():
    """Predicting 1 always: the MSE every model must beat (variance of the sum of two uniforms)."""
    dm = AddingDataModule(seq_len=10, sizes=(20_000, 10, 10))
    dm.setup()
    baseline = ((dm.data["train"]["targets"] - 1.0) ** 2).mean().item()
    assert baseline == pytest.approx(1 / 6, rel=0.03)


@pytest.mark.parametrize("delay, copy_len", [(1, 1), (7, 3), (50, 5)])
def test_copy_input_is_symbols_blanks_go_then_blanks(delay, copy_len):
    dm = copy(delay=delay, copy_len=copy_len, num_symbols=4)
    inputs, targets = dm.data["val"]["inputs"], dm.data["val"]["targets"]
    assert dm.seq_len == delay + 2 * copy_len and inputs.shape == (16, dm.seq_len)
    assert targets.shape == (16, copy_len) and dm.vocab_size == 6 and dm.go_id == 5
    assert torch.equal(inputs[:, :copy_len], targets)
    assert ((targets >= 1) & (targets <= 4)).all()
    go = copy_len + delay - 1  # the delay-th step after the last symbol
    assert (inputs[:, go] == dm.go_id).all()
    rest = torch.cat([inputs[:, copy_len:go], inputs[:, go + 1 :]], dim=1)
    assert (rest == 0).all() and rest.shape[1] == dm.seq_len - copy_len - 1
    assert inputs.shape[1] - (go + 1) == copy_len  # the answer steps follow the go marker


def test_loaders_give_batches_and_shuffle_training_by_seed_only():
    dm = adding()
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (8, 21, 2) and batch["targets"].shape == (8,)
    first = [b["targets"] for b in dm.train_dataloader()]
    again = [b["targets"] for b in adding().train_dataloader()]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not torch.equal(torch.cat(first), dm.data["train"]["targets"])  # shuffled
    val = torch.cat([b["targets"] for b in dm.val_dataloader()])
    assert torch.equal(val, dm.data["val"]["targets"])  # in order
    batch = next(iter(copy(delay=3, copy_len=5).test_dataloader()))
    assert batch["inputs"].dtype == torch.long and batch["inputs"].shape == (8, 13)


@pytest.mark.parametrize(
    "make, kwargs, words",
    [
        (AddingDataModule, {"seq_len": 1}, "seq_len"),
        (CopyDataModule, {"delay": 0}, "delay"),
        (CopyDataModule, {"num_symbols": 1}, "num_symbols"),
        (AddingDataModule, {"sizes": (10, 0, 10)}, "sizes"),
    ],
    ids=["short-adding", "no-delay", "one-symbol", "empty-split"],
)
def test_bad_arguments_fail_naming_the_argument(make, kwargs, words):
    with pytest.raises(ValueError, match=words):
        make(**kwargs)


def test_loaders_before_setup_say_so():
    with pytest.raises(RuntimeError, match="setup"):
        AddingDataModule().train_dataloader()
