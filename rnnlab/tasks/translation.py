"""Translation (many-to-many) as a LightningModule, a ``translate`` helper, and ``fit``.

Metrics: ``{train,val,test}/loss`` (cross-entropy per target word, padding ignored, teacher-forced), and
``val/bleu`` (greedy) and ``test/bleu`` (beam search of ``beam_size``): sacreBLEU on the detokenised output
against the untokenised references.

Example::

    from rnnlab.tasks import translation
    results = translation.fit("runs/de-en", attention="luong", max_minutes=20)
"""

from __future__ import annotations

import json
from pathlib import Path

import sacrebleu
import torch
import torch.nn.functional as F

from ..data.tokenizers import WordTokenizer
from ..data.translation import TranslationDataModule
from ..models.seq2seq import Seq2Seq
from .common import RNNTask, gathered, start_run, train_and_test


class TranslationTask(RNNTask):
    """A :class:`~rnnlab.models.Seq2Seq` trained with teacher forcing (``teacher_forcing`` is the
    probability of feeding the gold previous word; below 1 the model's own prediction is fed otherwise)."""

    monitor = "val/bleu"

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embedding_dim: int = 128,
        hidden_size: int = 256,
        num_layers: int = 1,
        cell: str = "lstm",
        nonlinearity: str = "tanh",
        bidirectional_encoder: bool = True,
        attention: str | None = "luong",
        dropout: float = 0.2,
        backend: str = "auto",
        teacher_forcing: float = 1.0,
        beam_size: int = 4,
        length_penalty: float = 1.0,
        max_decode_len: int = 60,
        label_smoothing: float = 0.0,
        optimizer: str = "adamw",
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        scheduler: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = Seq2Seq(
            src_vocab_size,
            tgt_vocab_size,
            embedding_dim,
            hidden_size,
            num_layers,
            cell,
            nonlinearity,
            bidirectional_encoder,
            attention,
            dropout,
            backend,
        )
        self._outputs: dict[str, list[tuple[str, str]]] = {"val": [], "test": []}

    def forward(self, src, src_lengths, tgt_in, teacher_forcing: float = 1.0):
        return self.model(src, src_lengths, tgt_in, teacher_forcing)

    def _loss(self, batch: dict, teacher_forcing: float) -> torch.Tensor:
        logits = self(batch["src"], batch["src_lengths"], batch["tgt_in"], teacher_forcing)  # (B, T, V)
        return F.cross_entropy(
            logits.flatten(0, 1),
            batch["tgt_out"].flatten(),
            ignore_index=self.model.pad_id,
            label_smoothing=self.hparams.label_smoothing,
        )

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch, self.hparams.teacher_forcing)
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(batch["ref"]))
        return loss

    def decode(self, batch: dict, beam_size: int = 1) -> list[list[int]]:
        """Token ids of each source's translation (greedy for ``beam_size=1``). Each is capped at
        ``2 * its source length + 5`` words (at most ``max_decode_len``): its own cap, not the batch's, so a
        sentence's output, and BLEU, do not depend on the batch size or on which sentences share its batch."""
        max_len = (batch["src_lengths"] * 2 + 5).clamp(max=self.hparams.max_decode_len)  # (B,)
        if beam_size == 1:
            return self.model.greedy(batch["src"], batch["src_lengths"], max_len)
        return self.model.beam_search(
            batch["src"], batch["src_lengths"], beam_size, max_len, self.hparams.length_penalty
        )

    def _evaluate(self, batch: dict, stage: str, beam_size: int) -> None:
        size = len(batch["ref"])
        loss = self._loss(batch, 1.0)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        tokenizer = self.trainer.datamodule.tgt_tokenizer
        hyps = [tokenizer.decode(ids) for ids in self.decode(batch, beam_size)]
        self._outputs[stage] += list(zip(hyps, batch["ref"], strict=True))

    def _bleu(self, stage: str) -> None:
        pairs, self._outputs[stage] = gathered(self._outputs[stage]), []  # every rank's, under DDP
        if pairs:
            hyps, refs = zip(*pairs, strict=True)
            bleu = sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score
            # the same on every rank (pairs gathered): sync_dist averages equal values, and quiets Lightning
            self.log(f"{stage}/bleu", bleu, batch_size=len(pairs), prog_bar=True, sync_dist=True)
            self.last_outputs = pairs

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val", beam_size=1)

    def on_validation_epoch_end(self) -> None:
        self._bleu("val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test", beam_size=self.hparams.beam_size)

    def on_test_epoch_end(self) -> None:
        self._bleu("test")


def translate(
    model: Seq2Seq,
    src_tokenizer: WordTokenizer,
    tgt_tokenizer: WordTokenizer,
    sentences: list[str],
    beam_size: int = 4,
    max_len: int = 60,
    length_penalty: float = 1.0,
) -> list[str]:
    """Detokenised translations of ``sentences`` (the model is put in eval mode)."""
    model.eval()
    ids = [src_tokenizer.encode(s) or [src_tokenizer.unk_id] for s in sentences]
    lengths = torch.tensor([len(i) for i in ids])
    src = torch.full((len(ids), int(lengths.max())), src_tokenizer.pad_id, dtype=torch.long)
    for row, i in enumerate(ids):
        src[row, : len(i)] = torch.tensor(i)
    device = next(model.parameters()).device
    src, lengths = src.to(device), lengths.to(device)
    if beam_size == 1:
        out = model.greedy(src, lengths, max_len)
    else:
        out = model.beam_search(src, lengths, beam_size, max_len, length_penalty)
    return [tgt_tokenizer.decode(o) for o in out]


def copy_bleu(dm: TranslationDataModule, stage: str = "test") -> float:
    """sacreBLEU of the source sentences taken as their own translations: the floor a model must beat."""
    pairs = dm.pairs[stage]
    return sacrebleu.corpus_bleu([p[1] for p in pairs], [[p[2] for p in pairs]]).score


def fit(
    out_dir: str | Path,
    attention: str | None = "luong",
    cell: str = "lstm",
    path: str | None = None,
    seed: int = 0,
    max_epochs: int = 30,
    max_minutes: float | None = 20.0,
    batch_size: int = 64,
    min_freq: int = 2,
    gradient_clip_val: float = 1.0,
    threads: int | None = 2,
    **model_args,
) -> dict:
    """Train on a seeded 90/5/5 split, keep the best ``val/bleu`` checkpoint, test it with beam search.

    Writes ``out_dir/metrics.csv``, ``split.json``, ``results.json`` (with the copy-the-source baseline),
    ``test_output.tsv`` (source, reference, hypothesis) and ``checkpoints/best.ckpt``.
    """
    out_dir = start_run(out_dir, seed, threads)
    dm = TranslationDataModule(path=path, seed=seed, batch_size=batch_size, min_freq=min_freq)
    dm.setup("fit")
    dm.save_split(out_dir / "split.json")
    task = TranslationTask(
        len(dm.src_tokenizer), len(dm.tgt_tokenizer), cell=cell, attention=attention, **model_args
    )
    results = train_and_test(
        task,
        dm,
        out_dir,
        monitor="val/bleu",
        mode="max",
        max_epochs=max_epochs,
        max_minutes=max_minutes,
        gradient_clip_val=gradient_clip_val,
    )
    outputs = getattr(task, "last_outputs", [])
    sources = {ref: src for _, src, ref in dm.pairs["test"]}
    lines = [f"{sources.get(ref, '')}\t{ref}\t{hyp}" for hyp, ref in outputs]
    (out_dir / "test_output.tsv").write_text("source\treference\thypothesis\n" + "\n".join(lines) + "\n")
    results.update(
        attention=str(attention),
        cell=cell,
        seed=seed,
        copy_bleu=copy_bleu(dm),
        parameters=sum(p.numel() for p in task.parameters()),
    )
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results
