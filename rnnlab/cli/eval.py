"""rnnlab-eval: a checkpoint's metrics on a split (the same numbers rnnlab-train reported for the test split).

    rnnlab-eval outputs/sentiment_lstm/runs/<time>/checkpoints/best.ckpt
    rnnlab-eval <ckpt> --split val
    rnnlab-eval <ckpt> data.path=my_reviews.tsv data.split=[0,0,1]    # all of your own file as the test split
    rnnlab-eval <ckpt> model.backend=cudnn                            # the same weights, torch.nn's layers

The data and the model are rebuilt from the config stored in the checkpoint; ``key=value`` arguments
change it first. ``model.*`` changes that keep the weights' shapes are applied (``model.backend=cudnn``,
``model.beam_size=8``); one that would not fit the weights (``model.hidden_size=64``) is an error naming it.
Prints the metrics (``<split>/...``) and, with ``--json``, writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import warnings

import lightning as L
import torch

from .checkpoints import Run

SPLITS = ("train", "val", "test")


def evaluate(
    checkpoint: str, split: str = "test", overrides: list[str] | None = None, accelerator: str = "cpu"
) -> dict:
    """Metrics of the checkpoint on ``split``, named ``<split>/<metric>``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    run = Run(checkpoint, overrides)
    if run.config.get("threads"):
        torch.set_num_threads(run.config["threads"])
    datamodule = run.datamodule()
    task = run.task()
    trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=run.config.get("trainer", {}).get("deterministic", False),
    )
    # The task's test step computes the metrics, whichever split it is given. The Trainer gets the whole
    # DataModule, not a loader alone: a task may read it while testing (translation decodes its
    # hypotheses with the DataModule's target tokenizer), so the test loader is pointed at the split.
    datamodule.test_dataloader = getattr(datamodule, f"{split}_dataloader")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        metrics = trainer.test(task, datamodule=datamodule, verbose=False)[0]
    return {f"{split}/{k.split('/', 1)[1]}" if "/" in k else k: float(v) for k, v in metrics.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rnnlab-eval", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .ckpt written by rnnlab-train (best.ckpt or last.ckpt)")
    parser.add_argument(
        "overrides", nargs="*", help="key=value changes to the stored config, e.g. data.path=..."
    )
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--accelerator", default="cpu", help="cpu (default), gpu or auto")
    parser.add_argument("--json", help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    metrics = evaluate(args.checkpoint, args.split, args.overrides, args.accelerator)
    for key, value in metrics.items():
        print(f"{key:<14} {value:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=1)


if __name__ == "__main__":
    main()
