"""rnnlab-train's switches: ``logger=none`` runs with the default callbacks; ``train=false ckpt_path=<ckpt>``
tests that checkpoint's weights, and ``train=false`` without one is refused rather than testing fresh ones."""

from __future__ import annotations

import logging

import pytest
import torch
from tiny import QUIET, data_overrides, run_train

import rnnlab.experiment as ex
from rnnlab.cli import eval as eval_cli


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def tiny_cfg(tmp_path, *overrides, out="run"):
    return ex.compose(
        [
            "experiment=sentiment_gru",
            *data_overrides("sentiment_gru", tmp_path),
            *QUIET,
            f"paths.output_dir={tmp_path / out}",
            *overrides,
        ]
    )


def test_logger_none_runs_with_the_default_callbacks(tmp_path, caplog):
    cfg = tiny_cfg(tmp_path, "debug=fdr", "logger=none")
    assert not cfg.logger and cfg.callbacks.learning_rate_monitor is not None
    with caplog.at_level(logging.INFO, logger="rnnlab.experiment"):
        metrics, task = ex.train(cfg)
    assert torch.isfinite(torch.tensor(metrics["test/acc"]))
    assert "learning_rate_monitor callback is left out" in caplog.text
    assert not task.trainer.loggers and not (tmp_path / "run" / "metrics.csv").exists()


def test_train_false_tests_the_weights_of_ckpt_path(tmp_path):
    limit = ["debug=limit", "trainer.max_epochs=1"]
    trained, _ = ex.train(tiny_cfg(tmp_path, *limit, out="trained"))
    best = trained["best_checkpoint"]
    metrics, task = ex.train(tiny_cfg(tmp_path, *limit, "train=false", f"ckpt_path={best}", out="tested"))
    assert metrics["best_checkpoint"] == best and metrics["steps"] == 0
    assert not (tmp_path / "tested" / "curve.png").exists()  # nothing was trained: no learning curve
    saved = torch.load(best, map_location="cpu", weights_only=False)["state_dict"]
    for name, value in task.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0, msg=name)
    evaluated = eval_cli.evaluate(best, "test")
    for key in ("test/loss", "test/acc", "test/f1"):
        assert metrics[key] == pytest.approx(trained[key], abs=1e-6), key
        assert metrics[key] == pytest.approx(evaluated[key], abs=1e-6), key


def test_train_false_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ValueError, match="train=false with test=true needs ckpt_path="):
        ex.train(tiny_cfg(tmp_path, "debug=fdr", "train=false"))
    # Without the test there is nothing to score: the task as initialised is returned (for inspection).
    metrics, task = ex.train(tiny_cfg(tmp_path, "debug=fdr", "train=false", "test=false"))
    assert metrics["steps"] == 0 and not any(k.startswith("test/") for k in metrics)


def test_command_line_train_false_names_the_checkpoint_it_tested(tmp_path):
    limit = ["debug=limit", "trainer.max_epochs=1", *data_overrides("sentiment_gru", tmp_path), *QUIET]
    proc = run_train(["experiment=sentiment_gru", *limit, "hydra.run.dir=trained"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = "trained/checkpoints/best.ckpt"
    trained = [line for line in proc.stdout.splitlines() if line.startswith("test/")]
    proc = run_train(
        ["experiment=sentiment_gru", *limit, "train=false", f"ckpt_path={best}", "hydra.run.dir=tested"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert trained and [line for line in proc.stdout.splitlines() if line.startswith("test/")] == trained
    assert f"checkpoint   {best}" in proc.stdout and "fast_dev_run keeps none" not in proc.stdout
