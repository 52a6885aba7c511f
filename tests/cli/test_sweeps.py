"""Sweeps end to end in a subprocess: a grid and its report, failure isolation, launchers, Optuna, DDP."""

from __future__ import annotations

import json

import pytest
from tiny import QUIET, data_overrides, run_train

from rnnlab.cli import report

LIMIT = ["debug=limit", "trainer.max_epochs=1", "trainer.num_sanity_val_steps=0"]


def statuses(sweep_dir):
    return {p.parent.name: json.loads(p.read_text())["status"] for p in sweep_dir.glob("*/result.json")}


def test_grid_sweep_then_report_tabulates_every_run(tmp_path):
    sweep = tmp_path / "sweep"
    args = [*data_overrides("sentiment_lstm", tmp_path), *QUIET, *LIMIT, f"hydra.sweep.dir={sweep}"]
    proc = run_train(["-m", *args, "model.cell=rnn,gru", "model.hidden_size=8,16"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert statuses(sweep) == {str(i): "ok" for i in range(4)}
    paths = report.report(sweep)
    table = paths["md"].read_text().splitlines()
    assert table[0].startswith("| run | model.cell | model.hidden_size | status | val/acc_best | test/acc")
    assert len(table) == 2 + 4
    assert {tuple(line.split(" | ")[1:3]) for line in table[2:]} == {
        ("rnn", "8"),
        ("rnn", "16"),
        ("gru", "8"),
        ("gru", "16"),
    }
    assert paths["png"].stat().st_size > 0
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert {"model.cell", "model.hidden_size", "test/acc", "optim.lr", "trainer.max_epochs"} <= set(header)


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_a_crashing_trial_is_recorded_and_the_others_finish(tmp_path, launcher):
    sweep = tmp_path / "sweep"
    args = [
        *data_overrides("sentiment_lstm", tmp_path),
        *QUIET,
        *LIMIT,
        f"hydra.sweep.dir={sweep}",
        f"launcher={launcher}",
    ]
    proc = run_train(["-m", *args, "model.hidden_size=-1,8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert statuses(sweep) == {"0": "failed", "1": "ok"}
    rows = report.build_table(report.load_runs(sweep), "val/acc_best")[0]
    assert "hidden_size" in rows[0]["error"] and rows[1]["error"] == ""


def test_optuna_search_tells_failures_and_finishes(tmp_path):
    import subprocess
    import sys

    probe = [sys.executable, "-c", "import hydra_plugins.rnnlab_optuna_sweeper"]
    if subprocess.run(probe, cwd=tmp_path, capture_output=True).returncode:
        pytest.skip(
            "the sweeper plugin is not installed yet: pip install -e . (setup.py packages hydra_plugins)"
        )
    sweep = tmp_path / "sweep"
    args = [*data_overrides("sentiment_lstm", tmp_path), *QUIET, *LIMIT, f"hydra.sweep.dir={sweep}"]
    # One choice of learning rate diverges: those trials fail, the search goes on.
    search = [
        "hparams_search=sentiment_optuna",
        "hydra.sweeper.n_trials=4",
        "optim.lr=choice(1e-3,1e30)",
        "model.hidden_size=choice(8,16)",
    ]
    proc = run_train(["-m", *args, *search, "trainer.gradient_clip_val=null"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = statuses(sweep)
    assert len(found) == 4
    from omegaconf import OmegaConf

    summary = OmegaConf.load(sweep / "optimization_results.yaml")
    assert summary.trials == 4 and summary.failed == list(found.values()).count("failed")
    assert report.report(sweep)["md"].exists()


def test_ddp_on_two_cpu_processes_writes_one_folder_and_one_log(tmp_path):
    logs = tmp_path / "logs"
    args = [*data_overrides("sentiment_lstm", tmp_path), *QUIET, *LIMIT, f"paths.log_dir={logs}"]
    proc = run_train([*args, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr + proc.stdout
    runs = list((logs / "sentiment_lstm" / "runs").iterdir())
    assert len(runs) == 1, runs  # not one dated folder per rank
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs", "tiny_sentiment.tsv"]
    assert json.loads((runs[0] / "result.json").read_text())["status"] == "ok"
    assert len(list(logs.rglob("metrics.csv"))) == 1 and len(list(logs.rglob("*.log"))) == 1


def test_multirun_returns_only_its_own_trials_from_a_reused_folder(tmp_path):
    """A smaller sweep into the folder of a larger one: Hydra rewrites trial 0 and leaves trial 1, which
    rnnlab.experiment.multirun leaves out, with a warning naming it."""
    from rnnlab.experiment import multirun

    sweep = tmp_path / "sweep"
    args = [*data_overrides("sentiment_lstm", tmp_path), *QUIET, *LIMIT]
    first = multirun([*args, "model.hidden_size=8,16"], sweep)
    assert sorted(r["run"] for r in first) == ["0", "1"]
    with pytest.warns(UserWarning, match=r"trial folders 1 are from an earlier sweep"):
        second = multirun([*args, "model.hidden_size=12"], sweep)
    assert [r["run"] for r in second] == ["0"]
    assert "model.hidden_size=12" in second[0]["overrides"]
