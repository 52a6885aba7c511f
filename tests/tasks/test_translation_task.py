import lightning as L
import pytest
import torch
from conftest import make_trainer

from rnnlab.data import TranslationDataModule
from rnnlab.tasks import TranslationTask
from rnnlab.tasks.translation import fit, translate

SMALL = dict(embedding_dim=16, hidden_size=32, dropout=0.0, lr=1e-2, beam_size=3)


@pytest.mark.parametrize("attention", [None, "luong", "bahdanau"], ids=str)
def test_loss_falls_and_bleu_is_logged(tiny_pairs, tmp_path, attention):
    L.seed_everything(0)
    dm = TranslationDataModule(path=str(tiny_pairs), batch_size=32, min_freq=1)
    dm.setup("fit")
    task = TranslationTask(
        len(dm.src_tokenizer), len(dm.tgt_tokenizer), attention=attention, teacher_forcing=0.9, **SMALL
    )
    trainer = make_trainer(tmp_path, max_epochs=3)
    trainer.fit(task, datamodule=dm)
    losses = [float(v) for k, v in trainer.logged_metrics.items() if k == "train/loss_epoch"]
    assert losses and float(trainer.callback_metrics["val/loss"]) < 0.6 * torch.log(torch.tensor(26.0))
    assert 0 <= float(trainer.callback_metrics["val/bleu"]) <= 100


def test_fit_checkpoint_reloads_to_identical_translations(tiny_pairs, tmp_path):
    results = fit(
        tmp_path / "run",
        path=str(tiny_pairs),
        max_epochs=4,
        max_minutes=None,
        batch_size=32,
        min_freq=1,
        threads=None,
        **SMALL,
    )
    assert results["test/bleu"] > results["copy_bleu"]
    assert (tmp_path / "run" / "test_output.tsv").read_text().count("\n") == 21
    checkpoint = torch.load(results["best_checkpoint"], weights_only=False)
    dm = TranslationDataModule(path=str(tiny_pairs))
    dm.load_state_dict(checkpoint["TranslationDataModule"])
    one = TranslationTask.load_from_checkpoint(results["best_checkpoint"]).model
    two = TranslationTask.load_from_checkpoint(results["best_checkpoint"]).model
    sentences = ["eins zwei Haus.", "rote Katze drei."]
    assert translate(one, dm.src_tokenizer, dm.tgt_tokenizer, sentences) == translate(
        two, dm.src_tokenizer, dm.tgt_tokenizer, sentences
    )
    greedy = translate(one, dm.src_tokenizer, dm.tgt_tokenizer, sentences, beam_size=1)
    assert all(isinstance(s, str) for s in greedy)


@pytest.mark.parametrize("beam_size", [1, 3], ids=["greedy", "beam3"])
def test_a_sentence_decodes_the_same_alone_and_beside_a_longer_one(beam_size):
    task = TranslationTask(20, 12, embedding_dim=8, hidden_size=16, dropout=0.0, backend="reference").eval()
    with torch.no_grad():
        task.model.out.bias[task.model.eos_id] -= 1e4  # no <eos>: every output runs to its length cap
    short, long = torch.tensor([[5, 6] + [0] * 8]), torch.randint(4, 20, (1, 10))
    alone = task.decode({"src": short[:, :2], "src_lengths": torch.tensor([2])}, beam_size)
    both = task.decode({"src": torch.cat([short, long]), "src_lengths": torch.tensor([2, 10])}, beam_size)
    assert both[0] == alone[0] and len(alone[0]) == 2 * 2 + 5  # its own cap, not the long source's
    assert len(both[1]) == 2 * 10 + 5
    task.hparams.max_decode_len = 7
    capped = task.decode({"src": long, "src_lengths": torch.tensor([10])}, beam_size)
    assert len(capped[0]) == 7  # max_decode_len comes first
