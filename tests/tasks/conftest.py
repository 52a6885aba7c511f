"""Tiny corpora written into tmp dirs, and quiet, small, deterministic Trainers."""

import warnings

import lightning as L
import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_and_small():
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*LightningDataModule.*")
        warnings.filterwarnings("ignore", ".*log_every_n_steps.*")
        warnings.filterwarnings("ignore", ".*GPU available.*")
        yield


def make_trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        gradient_clip_val=1.0,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
    )
    return L.Trainer(**{**defaults, **kwargs})


@pytest.fixture
def sentiment_tsv(tmp_path):
    g = torch.Generator().manual_seed(0)
    good, bad, filler = (
        ["good", "great", "fine"],
        ["bad", "awful", "dull"],
        ["the", "film", "was", "plot", "a"],
    )
    lines = ["score\ttext"]
    for i in range(160):
        positive = i % 2 == 0
        words = [
            filler[int(j)]
            for j in torch.randint(0, 5, (int(torch.randint(2, 9, (1,), generator=g)),), generator=g)
        ]
        words.insert(int(torch.randint(0, len(words), (1,), generator=g)), (good if positive else bad)[i % 3])
        lines.append(f"{'2.0' if positive else '-2.0'}\t{' '.join(words)}.")
    path = tmp_path / "tiny_sentiment.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_text(tmp_path):
    """A small, very regular text: a character model learns it in a few steps."""
    words = ["emma", "knightley", "harriet", "highbury", "hartfield"]
    lines = [" ".join(words[(i + j) % 5] for j in range(6)) + "." for i in range(300)]
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tiny_abc(tmp_path):
    bodies = ["|:DFA dfa|gfe dcB|AFD DFA|d3 d2:|", "|:GAB c2d|e2f gfe|dBG GBd|g3 g2:|"]
    tunes = [f"X:{i}\nT:Tune {i}\nM:6/8\nL:1/8\nK:{'DG'[i % 2]}\n{bodies[i % 2]}\n" for i in range(1, 61)]
    path = tmp_path / "tiny.abc"
    path.write_text("\n".join(tunes))
    return path


@pytest.fixture
def tiny_pairs(tmp_path):
    """German-English pairs built from a ten-word dictionary, word for word: quick to learn."""
    de = ["eins", "zwei", "drei", "vier", "fünf", "Haus", "Katze", "groß", "klein", "rot"]
    en = ["one", "two", "three", "four", "five", "house", "cat", "big", "small", "red"]
    g = torch.Generator().manual_seed(0)
    lines = ["de\ten"]
    for _ in range(400):
        words = torch.randint(0, 10, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
        lines.append(
            " ".join(de[w] for w in words) + ".\t" + " ".join(en[w] for w in words).capitalize() + "."
        )
    path = tmp_path / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path
