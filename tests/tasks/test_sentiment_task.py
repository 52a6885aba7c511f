import lightning as L
import pytest
import torch
from conftest import make_trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from rnnlab.data import SentimentDataModule
from rnnlab.tasks import SentimentTask
from rnnlab.tasks.sentiment import fit


def small_task(vocab_size, **kwargs):
    args = dict(embedding_dim=16, hidden_size=16, lr=1e-2, dropout=0.2, embedding_dropout=0.1)
    return SentimentTask(vocab_size, **{**args, **kwargs})


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_loss_falls(sentiment_tsv, tmp_path, cell):
    L.seed_everything(0)
    dm = SentimentDataModule(path=str(sentiment_tsv), batch_size=16, min_freq=1)
    dm.setup("fit")
    task = small_task(dm.vocab_size, cell=cell)
    batch = next(iter(dm.val_dataloader()))
    before = torch.nn.functional.cross_entropy(
        task.eval()(batch["tokens"], batch["lengths"]), batch["labels"]
    )
    make_trainer(tmp_path, max_epochs=4, limit_val_batches=0).fit(task, datamodule=dm)
    after = torch.nn.functional.cross_entropy(task.eval()(batch["tokens"], batch["lengths"]), batch["labels"])
    assert after < 0.7 * before


def test_article_preset_and_grad_norm_logged(sentiment_tsv, tmp_path):
    dm = SentimentDataModule(path=str(sentiment_tsv), batch_size=16, min_freq=1)
    dm.setup("fit")
    task = SentimentTask(dm.vocab_size, preset="article_lstm")
    assert task.model.head.out_features == 10 and task.model.rnn.single_bias
    trainer = make_trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(task, datamodule=dm)
    assert {"train/loss_step", "train/grad_norm", "val/acc", "val/f1"} <= set(trainer.logged_metrics)


def run(dm_args, tmp_path, max_epochs, ckpt_path=None, callbacks=()):
    L.seed_everything(7)
    dm = SentimentDataModule(**dm_args)
    dm.setup("fit")
    task = small_task(dm.vocab_size)
    trainer = make_trainer(
        tmp_path, max_epochs=max_epochs, callbacks=list(callbacks), enable_checkpointing=True
    )
    trainer.fit(task, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, task, dm


def test_resume_from_mid_training_checkpoint_matches_uninterrupted_run(sentiment_tsv, tmp_path):
    dm_args = dict(path=str(sentiment_tsv), batch_size=16, min_freq=1, seed=3)
    every = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, filename="{epoch}")
    full, full_task, _ = run(dm_args, tmp_path, 3, callbacks=[every])
    resumed, resumed_task, _ = run(dm_args, tmp_path / "b", 3, ckpt_path=tmp_path / "ckpt" / "epoch=0.ckpt")
    for name in ("val/acc", "val/loss", "train/loss_epoch"):
        assert float(resumed.callback_metrics[name]) == pytest.approx(
            float(full.callback_metrics[name]), abs=1e-6
        )
    for a, b in zip(full_task.parameters(), resumed_task.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoint_reloads_to_identical_predictions(sentiment_tsv, tmp_path):
    trainer, task, dm = run(dict(path=str(sentiment_tsv), batch_size=16, min_freq=1), tmp_path, 1)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    again = SentimentTask.load_from_checkpoint(tmp_path / "last.ckpt").eval()
    restored = SentimentDataModule(path=str(sentiment_tsv), batch_size=16, min_freq=5)  # a different vocab...
    restored.load_state_dict(torch.load(tmp_path / "last.ckpt", weights_only=False)["SentimentDataModule"])
    restored.setup("test")  # ...replaced by the checkpoint's
    assert restored.tokenizer.vocab == dm.tokenizer.vocab
    batch = next(iter(restored.test_dataloader()))
    torch.testing.assert_close(
        task.eval()(batch["tokens"], batch["lengths"]), again(batch["tokens"], batch["lengths"])
    )


def test_fit_entry_writes_curve_split_and_results(sentiment_tsv, tmp_path):
    results = fit(
        tmp_path / "run",
        path=str(sentiment_tsv),
        max_epochs=1,
        max_minutes=None,
        batch_size=32,
        min_freq=1,
        embedding_dim=8,
        hidden_size=8,
        threads=None,
    )
    for name in ("metrics.csv", "split.json", "results.json", "checkpoints/best.ckpt"):
        assert (tmp_path / "run" / name).exists()
    assert 0 <= results["test/acc"] <= 1 and results["cell"] == "lstm"


def test_accuracy_is_the_fraction_correct_and_f1_macro_with_many_classes():
    """10 classes (the article's preset): accuracy counts correct predictions (torchmetrics' macro average
    would be the mean recall per class, 0.55 here), F1 stays macro."""
    task = SentimentTask(vocab_size=50, preset="article_lstm")
    labels = torch.tensor([0] * 90 + [1] * 10)
    preds = torch.tensor([0] * 90 + [0] * 9 + [1])  # 91 of 100 right; class 1's recall 0.1
    task.val_acc(preds, labels)
    task.val_f1(preds, labels)
    assert task.val_acc.compute().item() == pytest.approx(0.91)
    f1_0, f1_1 = 2 * 90 / (2 * 90 + 9), 2 * 1 / (2 * 1 + 9)  # (classes never seen are left out)
    assert task.val_f1.compute().item() == pytest.approx((f1_0 + f1_1) / 2, rel=1e-4)
