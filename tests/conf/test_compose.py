"""The config tree composes: every preset, the schemas' checks, and no Hydra state left behind."""

from __future__ import annotations

from importlib import resources

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import rnnlab.experiment as ex

EXPERIMENTS = sorted(
    p.name[:-5] for p in (resources.files("rnnlab.conf") / "experiment").iterdir() if p.name.endswith(".yaml")
)
TASKS = {
    "sentiment": "SentimentTask",
    "article": "SentimentTask",
    "text": "LanguageModelTask",
    "music": "LanguageModelTask",
    "translation": "TranslationTask",
    "adding": "AddingTask",
    "copy": "CopyTask",
}


def test_the_presets_cover_every_task_and_cell():
    for kind in ("sentiment", "text", "music", "translation", "adding", "copy"):
        for cell in ("rnn", "gru", "lstm"):
            assert f"{kind}_{cell}" in EXPERIMENTS
    assert "article_lstm" in EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_resolved(experiment):
    cfg = ex.compose([f"experiment={experiment}"])
    assert cfg.name == experiment
    assert cfg.model._target_.endswith(TASKS[experiment.split("_")[0]])
    assert cfg.model.cell.name == experiment.split("_")[1]
    assert "hydra" not in cfg
    text = OmegaConf.to_yaml(cfg, resolve=False)
    assert "${" not in text, "compose() must resolve every interpolation"
    assert cfg.callbacks.model_checkpoint.monitor == cfg.monitor
    assert cfg.optimized_metric == f"{cfg.monitor}_best"


@pytest.mark.parametrize("debug", ["limit", "overfit"])
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_short_debug_runs_validate_once_per_epoch(experiment, debug):
    """debug=limit and debug=overfit train on a few batches: a preset's validation interval in steps
    (text_*: 100) would exceed them, which Lightning refuses at the start of fit."""
    cfg = ex.compose([f"experiment={experiment}", f"debug={debug}"])
    assert cfg.trainer.get("val_check_interval") is None


def test_the_default_is_sentiment_lstm_on_the_bundled_data():
    cfg = ex.compose()
    assert (cfg.name, cfg.model.cell.name, cfg.data.path) == ("sentiment_lstm", "lstm", None)


def test_compose_leaves_no_global_state_and_follows_overrides():
    first = ex.compose(["model.hidden_size=32", "paths.output_dir=/tmp/a"])
    second = ex.compose(["experiment=text_gru"])
    assert not GlobalHydra.instance().is_initialized()
    assert first.model.hidden_size == 32 and first.paths.output_dir == "/tmp/a"
    assert first.trainer.default_root_dir == "/tmp/a"
    assert second.model.hidden_size == 384 and second.model.cell.name == "gru"


def test_article_lstm_has_the_articles_parameter_count():
    cfg = ex.compose(["experiment=article_lstm"])
    config = OmegaConf.to_container(cfg, enum_to_str=True)

    class Vocabulary:  # the article's 1,000-entry vocabulary (the data caps it with max_vocab)
        vocab_size = cfg.data.max_vocab

    task = ex.build_task(config, Vocabulary())
    assert sum(p.numel() for p in task.parameters()) == 164_106


@pytest.mark.parametrize(
    "override, words",
    [
        ("model.hiden_size=64", ["hiden_size"]),
        ("data.batch_size=big", ["batch_size", "big"]),
        ("model.cell=lsmt", ["lsmt", "rnn", "gru", "lstm"]),
        ("optim.lr=fast", ["lr", "fast"]),
        ("experiment=sentiment_lsmt", ["experiment/sentiment_lsmt", "sentiment_lstm"]),
        ("trainer=tpu", ["trainer/tpu"]),
    ],
    ids=[
        "misspelt-key",
        "wrong-type",
        "bad-enum",
        "wrong-type-float",
        "unknown-experiment",
        "unknown-trainer",
    ],
)
def test_bad_overrides_fail_at_compose_with_a_clear_message(override, words):
    with pytest.raises((HydraException, OmegaConfBaseException)) as error:
        ex.compose([override])
    message = f"{error.value} {error.value.__cause__}"  # Hydra prints both
    for word in words:
        assert word in message, message


def test_a_misspelt_key_in_a_users_preset_fails_too(tmp_path):
    """The schema, not only the command line's struct mode: a user's own experiment file (found through
    hydra.searchpath) that sets an unknown key fails when it is merged."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nmodel:\n  poolng: max\n")
    search = f"hydra.searchpath=[file://{tmp_path}]"
    with pytest.raises((HydraException, OmegaConfBaseException)) as error:
        ex.compose([search, "experiment=mine"])
    assert "poolng" in f"{error.value} {error.value.__cause__}"
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nmodel:\n  pooling: mean\n")
    assert ex.compose([search, "experiment=mine"]).model.pooling.name == "mean"
