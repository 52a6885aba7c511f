"""The adding and copy tasks learn their short versions, read the answer at the right steps, and the
spectral-radius initialisation does what it says."""

import lightning as L
import pytest
import torch
from conftest import make_trainer

from rnnlab.data import AddingDataModule, CopyDataModule
from rnnlab.models.synthetic import SyntheticModel, set_spectral_radius
from rnnlab.tasks import AddingTask, CopyTask
from rnnlab.tasks.synthetic import fit


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_adding_loss_falls_below_the_baseline_on_short_sequences(tmp_path, cell):
    L.seed_everything(0)
    dm = AddingDataModule(seq_len=4, sizes=(1024, 256, 16), batch_size=32)
    task = AddingTask(cell=cell, hidden_size=16, lr=1e-2)
    trainer = make_trainer(tmp_path, max_epochs=4)
    trainer.fit(task, datamodule=dm)
    assert float(trainer.callback_metrics["val/loss"]) < 0.5 / 6  # half the predict-1 baseline
    assert {"train/loss_step", "train/grad_norm", "val/loss"} <= set(trainer.logged_metrics)


def test_copy_task_learns_a_short_delay_and_scores_only_the_answer_steps(tmp_path):
    L.seed_everything(0)
    dm = CopyDataModule(delay=2, copy_len=2, num_symbols=3, sizes=(1024, 256, 16), batch_size=32)
    dm.setup()
    task = CopyTask(dm.vocab_size, cell="gru", hidden_size=32, lr=1e-2)
    trainer = make_trainer(tmp_path, max_epochs=6)
    trainer.fit(task, datamodule=dm)
    assert float(trainer.callback_metrics["val/acc"]) > 0.9  # chance is 1/3

    # The answer is read at the last copy_len steps: outputs elsewhere do not change loss or accuracy.
    batch = next(iter(dm.val_dataloader()))
    task.eval()
    with torch.no_grad():
        logits = task(batch["inputs"])
    task.forward = lambda inputs: torch.cat([torch.randn_like(logits[:, :-2]), logits[:, -2:]], dim=1)
    logged = {}
    task.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    loss = task._step(batch, "val")
    expected = torch.nn.functional.cross_entropy(logits[:, -2:].flatten(0, 1), batch["targets"].flatten())
    torch.testing.assert_close(loss, expected)
    assert logged["val/acc"] == (logits[:, -2:].argmax(-1) == batch["targets"]).float().mean().item()


@pytest.mark.parametrize("cell, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
def test_spectral_radius_rescales_every_recurrent_block(cell, gates):
    model = SyntheticModel(2, 1, hidden_size=12, num_layers=2, cell=cell, spectral_radius=3.0)
    for layer in range(2):
        weight = getattr(model.rnn, f"weight_hh_l{layer}")
        blocks = weight.detach().double().split(12, dim=0)
        assert len(blocks) == gates
        for block in blocks:
            assert torch.linalg.eigvals(block).abs().max().item() == pytest.approx(3.0, rel=1e-5)
    weight = torch.randn(8, 8)
    set_spectral_radius(weight, 0.5)
    assert torch.linalg.eigvals(weight).abs().max().item() == pytest.approx(0.5, rel=1e-5)


def test_fit_from_code_trains_tests_and_records(tmp_path):
    results = fit(
        tmp_path / "run", problem="copy", cell="lstm", delay=3, max_epochs=1, batch_size=256, hidden_size=8
    )
    assert 0 <= results["test/acc"] <= 1 and results["epochs"] == 1
    assert {"metrics.csv", "split.json", "results.json"} <= {p.name for p in (tmp_path / "run").iterdir()}
    task = CopyTask.load_from_checkpoint(results["best_checkpoint"])  # rebuilt from its hyperparameters
    assert task.hparams.vocab_size == 10 and task.hparams.lr == 5e-3 and task.model.rnn.hidden_size == 8
    with pytest.raises(ValueError, match="problem"):
        fit(tmp_path / "bad", problem="sorting")


def test_sgd_is_plain_sgd():
    optimizer = AddingTask(optimizer="sgd", lr=0.05).configure_optimizers()
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.defaults["lr"] == 0.05 and optimizer.defaults["momentum"] == 0
