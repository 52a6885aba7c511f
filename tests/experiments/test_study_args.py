"""The studies' run.py scripts refuse a value no trial accepts before anything runs (a usage error, exit
status 2), and activations/run.py tells a failed trial from a diverged one. Nothing is trained here: the
sweeps are replaced by made-up trial results."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


def load(study: str):
    """experiments/<study>/run.py as a fresh module."""
    spec = importlib.util.spec_from_file_location(
        f"{study.replace('-', '_')}_run", EXPERIMENTS / study / "run.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_training(*args, **kwargs):
    raise AssertionError("a bad argument got past the parser: training started")


def sweep_reached(*args, **kwargs):
    raise AssertionError("the sweep was reached")


def run_main(monkeypatch, module, study: str, args: list[str]) -> SystemExit:
    monkeypatch.setattr(sys, "argv", [f"experiments/{study}/run.py", *args])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    return exit_info.value


BAD = [  # study, arguments, what the usage error says
    ("truncated-bptt", ["--lengths", "8", "0"], "--lengths must be >= 1, got 0"),
    ("truncated-bptt", ["--epochs", "0"], "--epochs must be >= 1"),
    ("truncated-bptt", ["--epoch-chars", "0"], "--epoch-chars must be >= 1"),
    ("truncated-bptt", ["--batch", "0"], "--batch must be >= 1"),
    ("truncated-bptt", ["--hidden", "0"], "--hidden must be >= 1"),
    ("truncated-bptt", ["--seed", "-1"], "--seed must be in [0, 2**32 - 1]"),
    ("long-range", ["--lengths", "0"], "--lengths must be >= 2"),
    ("long-range", ["--tasks", "adding", "--lengths", "1", "10"], "--lengths must be >= 2 (the adding"),
    ("long-range", ["--tasks", "copy", "--lengths", "0"], "--lengths must be >= 1 (copy's delay), got 0"),
    ("long-range", ["--epochs", "0"], "--epochs must be >= 1"),
    ("activations", ["--lengths", "1"], "--lengths must be >= 2"),
    (
        "activations",
        ["--seeds", "0", "-3"],
        "--seeds must be in [0, 2**32 - 1] (what Lightning seeds with), got -3",
    ),
    ("activations", ["--seeds", str(2**32)], "--seeds must be in [0, 2**32 - 1]"),
]


@pytest.mark.parametrize(("study", "args", "message"), BAD, ids=[f"{s}:{' '.join(a)}" for s, a, _ in BAD])
def test_a_bad_value_is_a_usage_error(monkeypatch, tmp_path, capsys, study, args, message):
    module = load(study)
    for name in ("multirun", "rnnlab"):
        if hasattr(module, name):
            monkeypatch.setattr(
                module, name, SimpleNamespace(train=no_training) if name == "rnnlab" else no_training
            )
    results = tmp_path / "results"
    error = run_main(
        monkeypatch, module, study, [*args, "--results", str(results), "--out", str(tmp_path / "o")]
    )
    assert error.code == 2
    assert message in capsys.readouterr().err
    assert not results.exists()


def test_the_shortest_accepted_lengths_pass_the_parser(monkeypatch, tmp_path):
    """The bounds are the data modules' own: the shortest length each accepts gets as far as the sweep."""
    for study, args in [
        ("truncated-bptt", ["--lengths", "1"]),
        ("long-range", ["--tasks", "copy", "--lengths", "1"]),
        ("long-range", ["--lengths", "2"]),
        ("activations", ["--lengths", "2", "--seeds", "0", str(2**32 - 1)]),
    ]:
        module = load(study)
        monkeypatch.setattr(module, "multirun", sweep_reached, raising=False)
        if hasattr(module, "rnnlab"):
            monkeypatch.setattr(module.rnnlab, "train", sweep_reached)
        monkeypatch.setattr(
            sys, "argv", ["run.py", *args, "--results", str(tmp_path / "r"), "--out", str(tmp_path)]
        )
        with pytest.raises(AssertionError, match="the sweep was reached"):
            module.main()


def trial(run: str, nonlinearity: str, status: str, error: str | None = None) -> dict:
    """A trial as rnnlab.experiment.multirun returns it."""
    result = {
        "run": run,
        "status": status,
        "metrics": {"test/loss": 0.01, "val/loss_best": 0.01, "epochs": 2} if status == "ok" else {},
        "config": {"model": {"nonlinearity": nonlinearity}, "data": {"seq_len": 5}, "seed": 0},
    }
    if error:
        result["error"] = error
    return result


def fake_sweep(monkeypatch, module, tmp_path: Path, runs: list[dict]) -> None:
    report_md = tmp_path / "report.md"
    report_md.write_text("| run |\n")
    monkeypatch.setattr(module, "multirun", lambda overrides, folder: runs)
    monkeypatch.setattr(module, "report", SimpleNamespace(report=lambda *a, **k: {"md": report_md}))
    monkeypatch.setattr(module, "epoch_series", lambda path, key: ([0, 1], [0.1, 0.01]), raising=False)
    monkeypatch.setattr(module, "plot", lambda *a: None)


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


DIVERGED = "DivergedError: training diverged: loss is nan at step 3 (epoch 0, batch 3)"
CRASHED = "ValueError: seq_len must be at least 2 (one marker in each half), got 1"


def test_activations_counts_a_failed_trial_apart_from_a_diverged_one(monkeypatch, tmp_path, capsys):
    module = load("activations")
    runs = [
        trial("0", "sigmoid", "ok"),
        trial("1", "tanh", "failed", DIVERGED),
        trial("2", "relu", "failed", CRASHED),
    ]
    fake_sweep(monkeypatch, module, tmp_path, runs)
    results = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["run.py", "--tiny", "--results", str(results), "--out", str(tmp_path)])
    module.main()
    assert [r["status"] for r in read_csv(results / "results.csv")] == ["ok", "diverged", "failed"]
    summary = {r["nonlinearity"]: r for r in read_csv(results / "summary.csv")}
    assert (summary["sigmoid"]["seeds"], summary["sigmoid"]["diverged"]) == ("1", "0")
    assert (summary["tanh"]["seeds"], summary["tanh"]["diverged"]) == ("1", "1")
    assert (summary["relu"]["seeds"], summary["relu"]["diverged"]) == ("0", "0")  # no result, not diverged
    assert CRASHED in capsys.readouterr().err


def test_activations_exits_nonzero_when_every_trial_failed(monkeypatch, tmp_path, capsys):
    module = load("activations")
    fake_sweep(
        monkeypatch, module, tmp_path, [trial(str(i), n, "failed", CRASHED) for i, n in enumerate("abc")]
    )
    results = tmp_path / "results"
    error = run_main(monkeypatch, module, "activations", ["--tiny", "--results", str(results), "--out", "o"])
    assert error.code not in (0, None)
    assert "all 3 trials failed" in str(error.code)
    assert CRASHED in capsys.readouterr().err
    assert list(results.iterdir()) == []  # the committed results would be left as they are


def test_activations_all_diverged_is_a_result(monkeypatch, tmp_path):
    module = load("activations")
    fake_sweep(monkeypatch, module, tmp_path, [trial("0", "relu", "failed", DIVERGED)])
    results = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["run.py", "--tiny", "--results", str(results), "--out", str(tmp_path)])
    module.main()
    relu = next(r for r in read_csv(results / "summary.csv") if r["nonlinearity"] == "relu")
    assert (relu["seeds"], relu["diverged"]) == ("1", "1")


def test_long_range_exits_nonzero_when_every_trial_failed(monkeypatch, tmp_path):
    module = load("long-range")
    runs = [
        {
            "run": "0",
            "status": "failed",
            "error": CRASHED,
            "metrics": {},
            "config": {"model": {"cell": "rnn"}, "data": {"seq_len": 4}},
        }
    ]
    fake_sweep(monkeypatch, module, tmp_path, runs)
    results = tmp_path / "results"
    args = ["--tiny", "--tasks", "adding", "--cells", "rnn", "--results", str(results), "--out", "o"]
    error = run_main(monkeypatch, module, "long-range", args)
    assert "all 1 trials failed" in str(error.code)
    assert list(results.iterdir()) == []
