import pytest

from rnnlab.data import CorpusError, TranslationDataModule


@pytest.fixture
def pairs_tsv(tmp_path):
    lines = ["de\ten"] + [f"Das Haus {i % 10} ist rot.\tThe house {i % 10} is red." for i in range(100)]
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_batches_carry_shifted_targets_and_references(pairs_tsv):
    dm = TranslationDataModule(path=str(pairs_tsv), batch_size=8, min_freq=1)
    dm.setup()
    assert dm.split_summary()["sizes"] == {"train": 90, "val": 5, "test": 5}
    b = next(iter(dm.val_dataloader()))
    assert (b["tgt_in"][:, 0] == dm.tgt_tokenizer.bos_id).all()
    for row in range(len(b["ref"])):
        n = int(b["tgt_lengths"][row])
        assert int(b["tgt_out"][row, n - 1]) == dm.tgt_tokenizer.eos_id
        assert (b["tgt_in"][row, 1:n] == b["tgt_out"][row, : n - 1]).all()
        assert dm.tgt_tokenizer.decode(b["tgt_out"][row]) == b["ref"][row]
        assert dm.src_tokenizer.decode(b["src"][row, : b["src_lengths"][row]]) == b["src_text"][row]


def test_split_reproducible_and_reversible(pairs_tsv):
    a, b = (
        TranslationDataModule(path=str(pairs_tsv), seed=2),
        TranslationDataModule(path=str(pairs_tsv), seed=2),
    )
    en = TranslationDataModule(path=str(pairs_tsv), seed=2, source="en")
    for dm in (a, b, en):
        dm.setup()
    assert a.split_summary() == b.split_summary()
    assert en.split_summary()["lines"] == a.split_summary()["lines"]
    assert en.pairs["test"][0][1] == a.pairs["test"][0][2]


def test_bad_file_names_the_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("de\ten\nHallo\tHello\nTschüss Bye\n")
    with pytest.raises(CorpusError, match=r"pairs\.tsv:3: expected 2 tab-separated"):
        TranslationDataModule(path=str(path)).setup()
    path.write_text("en\tde\nHello\tHallo\n")
    with pytest.raises(CorpusError, match=r"pairs\.tsv:1: expected the header"):
        TranslationDataModule(path=str(path)).setup()


def test_bundled_pairs():
    dm = TranslationDataModule()
    dm.setup()
    sizes = dm.split_summary()["sizes"]
    assert sizes["val"] == 939 and sizes["test"] == 940 and sizes["train"] > 16000


def test_a_file_too_small_for_a_split_is_refused_by_name(tmp_path):
    path = tmp_path / "twelve.tsv"
    path.write_text("de\ten\n" + "".join(f"Satz {i}\tsentence {i}\n" for i in range(12)))
    with pytest.raises(CorpusError, match=r"twelve\.tsv: the test split is empty: 12 sentence pairs") as e:
        TranslationDataModule(path=str(path)).setup("fit")
    assert "[0.9, 0.05, 0.05]" in str(e.value) and "train 11, val 1, test 0" in str(e.value)
    dm = TranslationDataModule(path=str(path), split=(0.5, 0.5, 0))  # test fraction 0: empty on purpose
    dm.setup("fit")
    assert dm.split_summary()["sizes"] == {"train": 6, "val": 6, "test": 0}


def test_training_pairs_all_longer_than_max_len_are_refused(pairs_tsv):
    with pytest.raises(CorpusError, match=r"pairs\.tsv: all 90 training pairs .* max_len=3"):
        TranslationDataModule(path=str(pairs_tsv), max_len=3).setup()
