import lightning as L
import pytest
import torch
from conftest import make_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from rnnlab.data import CharLMDataModule
from rnnlab.tasks import LanguageModelTask
from rnnlab.tasks.generation import fit, load, sample, sample_tunes

SMALL = dict(embedding_dim=16, hidden_size=32, num_layers=1, dropout=0.1, lr=1e-2)


def stream_loss(task, dm) -> float:
    task.eval()
    losses, state = [], None
    with torch.no_grad():
        for batch in dm.val_dataloader():
            logits, state = task(batch["input"], state)
            losses.append(torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["target"].flatten()))
    return float(torch.stack(losses).mean())


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_loss_falls(tiny_text, tmp_path, cell):
    L.seed_everything(0)
    dm = CharLMDataModule(corpus="text", path=str(tiny_text), seq_len=16, batch_size=8, eval_batch_size=2)
    dm.setup("fit")
    task = LanguageModelTask(dm.vocab_size, cell=cell, **SMALL)
    before = stream_loss(task, dm)
    make_trainer(tmp_path, max_epochs=2, limit_val_batches=0).fit(task, datamodule=dm)
    assert stream_loss(task, dm) < 0.6 * before


def test_state_is_carried_within_an_epoch_and_reset_between(tiny_text, tmp_path):
    dm = CharLMDataModule(corpus="text", path=str(tiny_text), seq_len=16, batch_size=8, eval_batch_size=2)
    dm.setup("fit")
    task = LanguageModelTask(dm.vocab_size, **SMALL)
    seen = []
    original = task.model.forward

    def spy(tokens, state=None):
        seen.append(state is None)
        return original(tokens, state)

    task.model.forward = spy
    make_trainer(tmp_path, max_epochs=2, limit_train_batches=3, limit_val_batches=2).fit(task, datamodule=dm)
    # per epoch: 3 train steps (fresh, carried, carried) then 2 val steps (fresh, carried)
    assert seen == [True, False, False, True, False] * 2


def run(dm_args, tmp_path, max_epochs, ckpt_path=None, callbacks=()):
    L.seed_everything(11)
    dm = CharLMDataModule(**dm_args)
    dm.setup("fit")
    task = LanguageModelTask(dm.vocab_size, **SMALL)
    trainer = make_trainer(
        tmp_path, max_epochs=max_epochs, callbacks=list(callbacks), enable_checkpointing=True
    )
    trainer.fit(task, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, task


def test_resume_from_mid_training_checkpoint_matches_uninterrupted_run(tiny_text, tmp_path):
    dm_args = dict(corpus="text", path=str(tiny_text), seq_len=16, batch_size=8, eval_batch_size=2)
    every = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, filename="{epoch}")
    full, full_task = run(dm_args, tmp_path, 2, callbacks=[every])
    resumed, resumed_task = run(dm_args, tmp_path / "b", 2, ckpt_path=tmp_path / "ckpt" / "epoch=0.ckpt")
    for name in ("val/loss", "val/bpc", "train/loss_epoch"):
        expected = float(full.callback_metrics[name])
        assert float(resumed.callback_metrics[name]) == pytest.approx(expected, abs=1e-6), name
    for a, b in zip(full_task.parameters(), resumed_task.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fit_checkpoint_reloads_to_identical_samples_and_tunes(tiny_abc, tmp_path):
    results = fit(
        tmp_path / "run",
        corpus="abc",
        path=str(tiny_abc),
        max_epochs=6,
        max_minutes=None,
        seq_len=32,
        batch_size=4,
        threads=None,
        **SMALL,
    )
    assert results["test/bpc"] == pytest.approx(results["test/loss"] / 0.6931, rel=1e-3)
    model, tokenizer = load(results["best_checkpoint"])
    task = LanguageModelTask.load_from_checkpoint(results["best_checkpoint"]).eval()
    tokens = torch.tensor([tokenizer.encode("X:1\nT:Tune 1\nM:6/8\n")])
    torch.testing.assert_close(task(tokens)[0], model(tokens)[0], rtol=0, atol=0)
    text = sample(model, tokenizer, "X:3\nT:", max_chars=80, seed=2)
    assert text == sample(model, tokenizer, "X:3\nT:", max_chars=80, seed=2)
    tunes = sample_tunes(model, tokenizer, count=4, headers=[("D", "6/8")], max_chars=200, temperature=0.5)
    assert len(tunes) == 4 and all(t.startswith("X:") and "K:D\n" in t for t, _ in tunes)
    assert sum(ok for _, ok in tunes) >= 1  # a tiny corpus of two tunes is learned quickly
