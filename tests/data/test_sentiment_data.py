import json

import pytest

from rnnlab.data import CorpusError, SentimentDataModule, WordTokenizer


@pytest.fixture
def tiny_tsv(tmp_path):
    lines = ["score\ttext"]
    for i in range(60):
        lines.append(f"{1 + i % 3}\tA good, fine film number {i}.")
        lines.append(f"-{1 + i % 2}\tA bad film; awful {i}!")
    lines.append("0\tneutral, dropped")
    path = tmp_path / "mine.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_user_file_split_and_batches(tiny_tsv):
    dm = SentimentDataModule(path=str(tiny_tsv), seed=1, batch_size=8, min_freq=1)
    dm.setup("fit")
    summary = dm.split_summary()
    assert summary["sizes"] == {"train": 96, "val": 12, "test": 12}
    assert 122 not in sum(summary["lines"].values(), [])  # the score-0 row is dropped
    batch = next(iter(dm.train_dataloader()))
    assert batch["tokens"].shape[0] == len(batch["lengths"]) == len(batch["labels"])
    assert batch["tokens"].shape[1] == int(batch["lengths"].max())
    for row, length in zip(batch["tokens"], batch["lengths"], strict=True):
        assert (row[length:] == dm.tokenizer.pad_id).all() and (row[:length] != dm.tokenizer.pad_id).all()


def test_split_reproducible_from_seed(tiny_tsv, tmp_path):
    a, b, c = (SentimentDataModule(path=str(tiny_tsv), seed=s) for s in (5, 5, 6))
    for dm in (a, b, c):
        dm.setup()
    assert a.split_summary() == b.split_summary()
    assert a.split_summary()["lines"] != c.split_summary()["lines"]
    a.save_split(tmp_path / "split.json")
    assert json.loads((tmp_path / "split.json").read_text())["lines"] == a.split_summary()["lines"]


def test_tokenizer_built_from_training_split_only(tiny_tsv):
    dm = SentimentDataModule(path=str(tiny_tsv), seed=0, min_freq=1)
    dm.setup()
    seen = {t for _, text, _ in dm._rows["train"] for t in WordTokenizer.split(text, lowercase=True)}
    unseen = {t for _, text, _ in dm._rows["test"] for t in WordTokenizer.split(text, lowercase=True)} - seen
    assert unseen and set(dm.tokenizer.vocab[4:]) == seen


def test_bundled_domains_load():
    dm = SentimentDataModule(domain="tweets")
    dm.setup()
    assert sum(dm.split_summary()["sizes"].values()) > 4000
    with pytest.raises(ValueError, match="domain"):
        SentimentDataModule(domain="books")


def test_a_file_too_small_for_a_split_is_refused_by_name(tmp_path):
    path = tmp_path / "five.tsv"
    path.write_text("score\ttext\n1\tgood\n-1\tbad\n2\tgreat\n-2\tawful\n1\tfine\n")
    with pytest.raises(CorpusError, match=r"five\.tsv: the val split is empty: 5 labelled rows") as error:
        SentimentDataModule(path=str(path)).setup("fit")
    assert "[0.8, 0.1, 0.1]" in str(error.value) and "train 4, val 0, test 1" in str(error.value)
    # a fraction of 0 asks for an empty split: all of the file as the test split (rnnlab-eval) is fine
    dm = SentimentDataModule(path=str(path), split=(0, 0, 1))
    dm.setup("test")
    assert dm.split_summary()["sizes"] == {"train": 0, "val": 0, "test": 5}
