"""Each study's command runs on its tiny setting and writes what its README shows: the CSV columns the
committed results have, finite numbers, the figure. (The studies' full runs are minutes to half an hour;
these are seconds each.)"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


def run_study(name: str, tmp_path: Path, *args: str) -> Path:
    """``python experiments/<name>/run.py --tiny`` with its results and runs in ``tmp_path``."""
    results = tmp_path / "results"
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(EXPERIMENTS / name / "run.py"), "--tiny", "--results", str(results)]
    proc = subprocess.run(
        [*command, "--out", str(tmp_path / "out"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_like_committed(results: Path, name: str, csv_name: str) -> list[dict]:
    """The tiny run's CSV has the committed results' columns (so the README's table still comes out of
    this code) and at least one row."""
    rows = read_csv(results / csv_name)
    committed = EXPERIMENTS / name / csv_name
    if committed.exists():
        assert list(rows[0]) == list(read_csv(committed)[0]), csv_name
    return rows


def finite(value: str) -> bool:
    return value != "" and math.isfinite(float(value))


def test_vanishing_gradients(tmp_path):
    results = run_study("vanishing-gradients", tmp_path, "--variants", "rnn-sigmoid", "lstm", "--batch", "8")
    norms = assert_like_committed(results, "vanishing-gradients", "results.csv")
    assert {(r["variant"], r["when"]) for r in norms} == {
        (v, w) for v in ("rnn-sigmoid", "lstm") for w in ("init", "trained")
    }
    assert sorted(
        int(r["distance"]) for r in norms if r["variant"] == "lstm" and r["when"] == "init"
    ) == list(range(12))
    assert all(finite(r["grad_norm"]) and float(r["grad_norm"]) > 0 for r in norms)
    summary = assert_like_committed(results, "vanishing-gradients", "summary.csv")
    # a sigmoid RNN loses gradient at every step back (its derivative is at most 1/4)
    sigmoid = next(r for r in summary if r["variant"] == "rnn-sigmoid")
    assert float(sigmoid["init_ratio"]) < 1e-3
    assert (results / "gradients.png").stat().st_size > 10_000


def test_long_range(tmp_path):
    results = run_study("long-range", tmp_path, "--cells", "rnn", "lstm")
    rows = assert_like_committed(results, "long-range", "results.csv")
    assert {(r["task"], r["cell"], int(r["length"])) for r in rows} == {
        (t, c, n) for t in ("adding", "copy") for c in ("rnn", "lstm") for n in (4, 8)
    }
    assert all(r["status"] == "ok" and finite(r["value"]) for r in rows)
    assert all(0 <= float(r["value"]) <= 1 for r in rows if r["task"] == "copy")
    assert {int(r["seq_len"]) for r in rows if r["task"] == "copy"} == {4 + 6, 8 + 6}
    assert (results / "long-range.png").stat().st_size > 10_000
    assert "| data.seq_len | model.cell |" in (results / "report-adding.md").read_text()


def test_exploding_gradients(tmp_path):
    results = run_study("exploding-gradients", tmp_path)
    rows = {r["clipping"]: r for r in assert_like_committed(results, "exploding-gradients", "results.csv")}
    assert set(rows) == {"no clipping", "clip norm at 1", "clip values at 0.1"}
    traces = assert_like_committed(results, "exploding-gradients", "traces.csv")
    assert {r["clipping"] for r in traces} == set(rows)
    # Within 16 steps the unclipped gradient explodes (it moves the weights by all of it); clipping holds
    # it down, and the clipped runs' losses stay finite.
    clipped = ("clip norm at 1", "clip values at 0.1")
    assert float(rows["no clipping"]["max_grad_norm"]) > 1e3 * max(
        float(rows[c]["max_grad_norm"]) for c in clipped
    )
    for label in clipped:
        assert rows[label]["first_nonfinite_loss_step"] == "" and finite(rows[label]["test_mse"])
    assert (results / "traces.png").stat().st_size > 10_000


def test_truncated_bptt(tmp_path):
    results = run_study("truncated-bptt", tmp_path)
    rows = assert_like_committed(results, "truncated-bptt", "results.csv")
    assert [int(r["k"]) for r in rows] == [4, 16]
    for r in rows:
        assert all(finite(r[key]) for key in ("val_nats_per_char", "train_seconds_per_epoch"))
        assert float(r["train_seconds_per_epoch"]) > 0
    # BPTT over 16 steps keeps more for backward than over 4
    assert float(rows[1]["saved_for_backward_mb"]) > float(rows[0]["saved_for_backward_mb"]) > 0
    assert (results / "truncated-bptt.png").stat().st_size > 10_000


def test_activations(tmp_path):
    results = run_study("activations", tmp_path)
    rows = assert_like_committed(results, "activations", "results.csv")
    assert sorted(r["nonlinearity"] for r in rows) == ["relu", "sigmoid", "tanh"]
    assert all(r["status"] == "ok" and finite(r["test_mse"]) for r in rows)
    summary = assert_like_committed(results, "activations", "summary.csv")
    assert all(
        float(r["test_mse_min"]) <= float(r["test_mse_mean"]) <= float(r["test_mse_max"]) for r in summary
    )
    assert (results / "activations.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "name", ["vanishing-gradients", "long-range", "exploding-gradients", "truncated-bptt", "activations"]
)
def test_each_study_has_its_command_and_results_in_its_readme(name):
    readme = (EXPERIMENTS / name / "README.md").read_text()
    assert f"experiments/{name}/run.py" in readme
    for png in (EXPERIMENTS / name).glob("*.png"):
        assert f"]({png.name})" in readme, png.name
