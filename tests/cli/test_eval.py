"""rnnlab-eval: every task's checkpoint evaluates to the metrics its run reported; ``model.*`` overrides are
applied where the weights still fit, refused by name where they do not, never ignored."""

from __future__ import annotations

import pytest
import torch
from tiny import QUIET, data_overrides

import rnnlab.experiment as ex
from rnnlab.cli import eval as eval_cli
from rnnlab.cli.checkpoints import Run


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def trained(folder, experiment):
    """(metrics, best.ckpt) of a one-epoch miniature of ``experiment`` on its tiny data in ``folder``."""
    cfg = ex.compose(
        [
            f"experiment={experiment}",
            *data_overrides(experiment, folder),
            *QUIET,
            "debug=limit",
            "trainer.max_epochs=1",
            f"paths.output_dir={folder / 'run'}",
        ]
    )
    metrics, _ = ex.train(cfg)
    return metrics, metrics["best_checkpoint"]


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("sentiment"), "sentiment_gru")


def test_translation_checkpoint_evaluates_to_the_run_s_test_metrics(tmp_path):
    # The task decodes with the DataModule's target tokenizer: rnnlab-eval must hand it the DataModule.
    metrics, best = trained(tmp_path, "translation_gru")
    evaluated = eval_cli.evaluate(best, "test")
    assert set(evaluated) == {"test/loss", "test/bleu"}
    for key in ("test/loss", "test/bleu"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-6), key
    # Another split goes through the same test step, under its own name.
    assert set(eval_cli.evaluate(best, "val")) == {"val/loss", "val/bleu"}


def test_overrides_that_keep_the_weights_are_applied(sentiment):
    metrics, best = sentiment
    task = Run(best, ["model.backend=cudnn", "optim.lr=0.5"]).task()
    layers = [m for m in task.modules() if hasattr(m, "backend")]
    assert layers and all(m.backend == "cudnn" for m in layers)
    assert task.hparams.backend == "cudnn" and task.hparams.lr == 0.5
    # The same weights through torch.nn's implementation: the run's metrics, to fp32 rounding.
    evaluated = eval_cli.evaluate(best, "test", ["model.backend=cudnn"])
    for key in ("test/loss", "test/acc", "test/f1"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-5), key


def test_overrides_reach_a_task_that_passes_its_arguments_on_in_kwargs(tmp_path):
    # CopyTask(vocab_size, lr, **kwargs): hidden_size and backend are its base class's arguments.
    metrics, best = trained(tmp_path, "copy_gru")
    evaluated = eval_cli.evaluate(best, "test", ["model.backend=cudnn"])
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"], abs=1e-6)
    with pytest.raises(SystemExit, match="model.hidden_size=9 does not fit"):
        Run(best, ["model.hidden_size=9"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hidden_size=7", r"model.hidden_size=7 does not fit the weights .*\[\d+, \d+\] in the check"),
        ("model.num_layers=2", r"model.num_layers=2 does not fit the weights .* would be new"),
        ("model.hidden_sise=7", r"model.hidden_sise: SentimentTask takes no argument 'hidden_sise'"),
        ("model._target_=rnnlab.tasks.generation.LanguageModelTask", r"model._target_ cannot change"),
    ],
    ids=["shape", "new-parameters", "misspelt", "other-task"],
)
def test_overrides_the_weights_do_not_fit_are_refused_by_name(sentiment, override, message):
    _, best = sentiment
    with pytest.raises(SystemExit, match=message):
        eval_cli.main([best, "model.backend=cudnn", override])
