"""rnnlab-train and rnnlab.train: every preset runs, a run writes what it promises, resume, eval, sample."""

from __future__ import annotations

import json
from importlib import resources

import pytest
import torch
from omegaconf import OmegaConf
from tiny import QUIET, data_overrides, run_train, write_sentiment

import rnnlab.experiment as ex
from rnnlab.cli import eval as eval_cli
from rnnlab.cli import sample as sample_cli
from rnnlab.cli.callbacks import DivergedError
from rnnlab.tasks import translation

EXPERIMENTS = sorted(
    p.name[:-5] for p in (resources.files("rnnlab.conf") / "experiment").iterdir() if p.name.endswith(".yaml")
)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def tiny_cfg(tmp_path, *overrides, experiment="sentiment_lstm", out="run"):
    return ex.compose(
        [
            f"experiment={experiment}",
            *data_overrides(experiment, tmp_path),
            *QUIET,
            f"paths.output_dir={tmp_path / out}",
            *overrides,
        ]
    )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_with_fast_dev_run(tmp_path, experiment):
    metrics, task = ex.train(tiny_cfg(tmp_path, "debug=fdr", experiment=experiment))
    assert any(k.startswith("test/") for k in metrics), metrics
    assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith("test/"))
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "ok" and result["config"]["name"] == experiment


def test_command_line_run_fits_tests_and_says_where_everything_went(tmp_path):
    proc = run_train(
        [
            *data_overrides("sentiment_lstm", tmp_path),
            *QUIET,
            "debug=limit",
            f"paths.log_dir={tmp_path}/logs",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "logs" / "sentiment_lstm" / "runs").iterdir()
    for name in (
        "metrics.csv",
        "curve.png",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "config.yaml",
        "result.json",
    ):
        assert (run_dir / name).exists(), name
        assert str(run_dir / name) in proc.stdout or name in ("checkpoints/last.ckpt", "config.yaml")
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "ok" and "test/acc" in proc.stdout

    # rnnlab-eval on the best checkpoint gives the test metrics the run reported.
    evaluated = eval_cli.evaluate(str(run_dir / "checkpoints" / "best.ckpt"), "test")
    for key in ("test/acc", "test/loss", "test/f1"):
        assert evaluated[key] == pytest.approx(result["metrics"][key], abs=1e-6), key

    # rnnlab-sample classifies a sentence given on the command line.
    sample_cli.main([str(run_dir / "checkpoints" / "best.ckpt"), "a great film"])


def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    # Whole epochs (a resumed run starts at an epoch boundary); test=false: the task keeps its final weights.
    # Dropout on (the default 0.5): the resumed run must draw the uninterrupted run's dropout masks.
    limit = ["debug=limit", "trainer.max_epochs=3", "trainer.limit_train_batches=1.0", "test=false"]
    _, full = ex.train(tiny_cfg(tmp_path, *limit, out="full"))
    _, cut = ex.train(tiny_cfg(tmp_path, *limit, "trainer.max_epochs=1", out="cut"))
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 0
    metrics, resumed = ex.train(tiny_cfg(tmp_path, *limit, f"ckpt_path={last}", out="resumed"))
    assert metrics["steps"] == 3 * 8
    moved = max(
        (a - b).abs().max()
        for a, b in zip(cut.state_dict().values(), full.state_dict().values(), strict=True)
    )
    assert moved > 1e-3, "the cut run must differ from the full one, or the comparison below proves nothing"
    for (name, value), again in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(again, value, rtol=0, atol=1e-6, msg=name)


def test_a_diverging_run_stops_with_a_clear_message_and_is_recorded(tmp_path):
    cfg = tiny_cfg(tmp_path, "debug=limit", "optim.lr=1e30", "trainer.gradient_clip_val=null")
    with pytest.raises(DivergedError, match="diverged: loss is nan"):
        ex.train(cfg)
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "failed" and "DivergedError" in result["error"]


def test_generation_checkpoint_samples_text_and_tunes(tmp_path, capsys):
    metrics, _ = ex.train(tiny_cfg(tmp_path, "debug=limit", "trainer.max_epochs=1", experiment="music_lstm"))
    sample_cli.main([metrics["best_checkpoint"], "--tune", "--key", "D", "--chars", "60"])
    out = capsys.readouterr().out
    assert "X:1\nT:Sample 1\nM:6/8\nL:1/8\nK:D\n" in out and "parses as ABC" in out


def test_translation_checkpoint_translates_a_sentence(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, "debug=limit", "trainer.max_epochs=1", experiment="translation_gru")
    metrics, task = ex.train(cfg)
    sample_cli.main([metrics["best_checkpoint"], "hund katze ."])
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    dm = task.trainer.datamodule
    expected = translation.translate(task.model, dm.src_tokenizer, dm.tgt_tokenizer, ["hund katze ."])[0]
    assert printed == expected  # the command line gives what the reloaded model gives in code


def test_the_cli_rejects_a_bad_override_before_training(tmp_path):
    proc = run_train(["model.cell=lsmt"], tmp_path)
    assert proc.returncode != 0
    assert "Invalid value 'lsmt', expected one of [rnn, gru, lstm]" in proc.stderr + proc.stdout
    assert not (tmp_path / "outputs").exists()


def test_tiny_sentiment_file_is_read_as_given(tmp_path):
    """The tiny corpus is what the tests think it is: 80/10/10 of 160 rows, one batch per eval split."""
    cfg = tiny_cfg(tmp_path, "debug=fdr")
    dm = ex.build_datamodule(OmegaConf.to_container(cfg.data, enum_to_str=True))
    dm.setup("fit")
    assert dm.split_summary()["sizes"] == {"train": 128, "val": 16, "test": 16}
    assert write_sentiment(tmp_path).exists()
