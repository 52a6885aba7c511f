"""Tiny corpora written to tmp files, and the overrides that point each experiment at them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

# Small and quiet: a few batches per loop, no progress bar or model table in the captured output.
QUIET = [
    "callbacks.rich_progress_bar=null",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def write_sentiment(folder: Path, rows: int = 160) -> Path:
    """``score<TAB>text`` rows whose label is given away by one word: a model learns it in a few steps."""
    rng = random.Random(0)
    good, bad, filler = (
        ["good", "great", "fine"],
        ["bad", "awful", "dull"],
        ["the", "film", "was", "plot", "a"],
    )
    lines = ["score\ttext"]
    for i in range(rows):
        positive = i % 2 == 0
        words = [rng.choice(filler) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), (good if positive else bad)[i % 3])
        lines.append(f"{'2.0' if positive else '-2.0'}\t{' '.join(words)}.")
    path = folder / "tiny_sentiment.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_text(folder: Path) -> Path:
    words = ["emma", "knightley", "harriet", "highbury", "hartfield"]
    path = folder / "tiny.txt"
    path.write_text(
        "\n".join(" ".join(words[(i + j) % 5] for j in range(6)) + "." for i in range(300)) + "\n"
    )
    return path


def write_abc(folder: Path) -> Path:
    bodies = ["|:DFA dfa|gfe dcB|AFD DFA|d3 d2:|", "|:GAB c2d|e2f gfe|dBG GBd|g3 g2:|"]
    tunes = [f"X:{i}\nT:Tune {i}\nM:6/8\nL:1/8\nK:{'DG'[i % 2]}\n{bodies[i % 2]}\n" for i in range(1, 61)]
    path = folder / "tiny.abc"
    path.write_text("\n".join(tunes))
    return path


def write_translation(folder: Path, rows: int = 120) -> Path:
    """``de<TAB>en`` pairs over a five-word dictionary: word-for-word, learnable in a few steps."""
    rng = random.Random(0)
    words = {"hund": "dog", "katze": "cat", "haus": "house", "baum": "tree", "auto": "car"}
    lines = ["de\ten"]
    for _ in range(rows):
        chosen = [rng.choice(list(words)) for _ in range(rng.randint(1, 5))]
        lines.append(f"{' '.join(chosen)} .\t{' '.join(words[w] for w in chosen)} .")
    path = folder / "tiny_pairs.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def data_overrides(experiment: str, folder: Path) -> list[str]:
    """Overrides that make ``experiment`` read a tiny file of its kind in ``folder``, in small batches."""
    kind = experiment.split("_")[0]
    if kind in ("sentiment", "article"):
        return [f"data.path={write_sentiment(folder)}", "data.batch_size=16", "data.min_freq=1"]
    if kind == "text":
        return [f"data.path={write_text(folder)}", "data.batch_size=4", "data.seq_len=32"]
    if kind == "music":
        return [f"data.path={write_abc(folder)}", "data.batch_size=4", "data.seq_len=32"]
    if kind == "translation":
        overrides = [f"data.path={write_translation(folder)}", "data.batch_size=8", "data.min_freq=1"]
        return overrides + ["model.hidden_size=16", "model.embedding_dim=8", "model.beam_size=2"]
    if kind in ("adding", "copy"):  # generated: only the sizes shrink
        length = "data.seq_len=8" if kind == "adding" else "data.delay=4"
        return [length, "data.sizes=[64,16,16]", "data.batch_size=16", "model.hidden_size=8"]
    raise ValueError(f"no tiny data for {experiment}")


def run_train(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m rnnlab.cli.train <args>`` in ``cwd`` (what the rnnlab-train script runs)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, "-m", "rnnlab.cli.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
