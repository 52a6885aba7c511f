import pytest
import torch

from rnnlab.data import CharLMDataModule, CorpusError
from rnnlab.data.generation import StreamChunks


def test_consecutive_chunks_continue_each_row():
    ids = torch.arange(103)
    chunks = StreamChunks(ids, rows=4, seq_len=6)  # rows of 25: [0..24], [25..49], ...
    assert len(chunks) == 4
    first, second, last = chunks[0], chunks[1], chunks[3]
    assert first["input"][1].tolist() == list(range(25, 31))
    assert second["input"][1].tolist() == list(range(31, 37))
    assert torch.equal(first["target"], first["input"] + 1)
    assert last["input"].shape == (4, 6) and last["target"][:, -1].tolist() == [24, 49, 74, 99]
    with pytest.raises(IndexError):
        chunks[4]


@pytest.fixture
def novels(tmp_path):
    paths = []
    for k in range(2):
        text = "".join(f"Line {i} of book {k}: it is a truth universally acknowledged.\n" for i in range(100))
        path = tmp_path / f"book{k}.txt"
        path.write_text(text)
        paths.append(str(path))
    return paths


def test_text_files_split_by_position_and_recorded(novels):
    dm = CharLMDataModule(corpus="text", path=novels, seq_len=16, batch_size=4)
    dm.setup()
    summary = dm.split_summary()
    assert [f["file"] for f in summary["files"]] == novels
    cuts = summary["files"][0]["cuts"]
    assert cuts[0] == 0 and cuts[-1] == summary["files"][0]["characters"]
    assert abs(cuts[1] / cuts[-1] - 0.9) < 0.02 and abs(cuts[2] / cuts[-1] - 0.95) < 0.02
    assert "book 0" in dm.text["val"] and "book 1" in dm.text["test"]
    assert dm.text["train"].count("Line 0 of") == 2  # both books open the training stream
    assert dm.tokenizer.decode(dm.ids["val"]) == dm.text["val"]


def test_abc_split_is_seeded(tmp_path):
    tunes = "".join(f"X:{i}\nT:Tune {i}\nM:6/8\nK:D\n|:DFA dfa:|\n\n" for i in range(1, 41))
    path = tmp_path / "mine.abc"
    path.write_text(tunes)
    a, b, c = (CharLMDataModule(corpus="abc", path=str(path), seed=s, batch_size=2) for s in (1, 1, 2))
    for dm in (a, b, c):
        dm.setup()
    assert a.split_summary() == b.split_summary() != c.split_summary()
    xs = a.split_summary()["files"][0]["x_line_numbers"]
    assert [len(xs[s]) for s in ("train", "val", "test")] == [36, 2, 2]
    assert a.text["val"].startswith("X:") and "\n\nX:" in a.text["train"]


def test_too_short_a_split_is_reported(novels):
    with pytest.raises(CorpusError, match="too few"):
        CharLMDataModule(corpus="text", path=novels[0], batch_size=512).setup()


def test_bad_user_file_is_reported_at_setup(tmp_path):
    path = tmp_path / "book.txt.gz"
    path.write_text("not gzip")
    with pytest.raises(CorpusError, match=r"book\.txt\.gz: not a gzip"):
        CharLMDataModule(corpus="text", path=str(path)).setup()


def test_bundled_corpora_load():
    dm = CharLMDataModule(corpus="austen")
    dm.setup()
    assert sum(dm.split_summary()["characters"].values()) > 4_000_000
    assert len(dm.split_summary()["files"]) == 6
