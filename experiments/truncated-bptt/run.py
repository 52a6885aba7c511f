"""Truncated BPTT: the character language model (text_lstm, on Austen) trained with several truncation
lengths k (data.seq_len): final validation loss, time per epoch and the memory BPTT holds for backward.

Every run sees the same characters: an "epoch" here is ``--epoch-chars`` characters, the first
epoch_chars / batch of each of the stream's ``batch`` parallel rows (trainer.limit_train_batches =
epoch_chars / (batch x k)), so a short k takes more, smaller steps over the same text. The state is carried
(detached) from one chunk to the next, so k only limits how far back gradients flow. Validation covers the
first 20% of the validation stream for every k. Memory: the bytes of the tensors autograd saves for
backward in one training step of the trained model (torch.autograd.graph.saved_tensors_hooks), which grows
with k; time: the training batches of each epoch (rnnlab.cli.callbacks.EpochTimer), under a lock so that no
benchmark runs alongside. Writes results.csv and truncated-bptt.png into --results; run folders go to
--out:

    flock /tmp/rnnlab_bench.lock nice -n 19 python experiments/truncated-bptt/run.py   # ~4 min, 2 cores
    python experiments/truncated-bptt/run.py --tiny --results /tmp/tb                  # seconds: the tests
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch

import rnnlab
from rnnlab.experiment import QUIET
from rnnlab.tasks.curves import epoch_series, write_csv

HERE = Path(__file__).parent


def saved_for_backward_bytes(task, batch: dict) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one training step: the
    activations, not the parameters (held anyway), each counted by its own size (a batch of token ids is a
    view of the whole stream; only the view is needed)."""
    parameters = {p.data_ptr() for p in task.parameters()}
    saved: dict[tuple[int, int], int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        if tensor.data_ptr() not in parameters:
            saved[tensor.data_ptr(), tensor.numel()] = tensor.numel() * tensor.element_size()
        return tensor

    task.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        logits, _ = task(batch["input"])  # (B, k, V), from a zero state
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["target"].flatten())
    loss.backward()
    task.zero_grad()
    return sum(saved.values())


def write_tiny_text(path: Path) -> str:
    """300 lines of five names in rotation: enough for a few chunks in every split."""
    names = ["emma", "knightley", "harriet", "highbury", "hartfield"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(names[(i + j) % 5] for j in range(6)) + ".\n" for i in range(300)))
    return str(path)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error (exit status 2), before anything is trained, on a value no run accepts."""
    for option, values, low in [
        ("--lengths", args.lengths, 1),  # k: characters per chunk
        ("--epoch-chars", [args.epoch_chars], 1),
        ("--epochs", [args.epochs], 1),
        ("--batch", [args.batch], 1),
        ("--hidden", [args.hidden], 1),
    ]:
        if bad := [v for v in values if v < low]:
            parser.error(f"{option} must be >= {low}, got {' '.join(map(str, bad))}")
    if not 0 <= args.seed < 2**32:
        parser.error(f"--seed must be in [0, 2**32 - 1] (what Lightning seeds with), got {args.seed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=[8, 16, 32, 64, 128, 256])
    parser.add_argument("--epoch-chars", type=int, default=1_000_000, help="training characters an epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="parallel rows of the stream")
    parser.add_argument("--hidden", type=int, default=128, help="LSTM units (one layer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="k=4 and 16 on a tiny made-up text: the tests")
    parser.add_argument("--path", help="train on this text file instead of the bundled novels")
    parser.add_argument("--out", default="outputs/truncated-bptt")
    parser.add_argument("--results", default=str(HERE))
    args = parser.parse_args()
    check_args(parser, args)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    epochs = 1 if args.tiny else args.epochs
    if args.tiny:
        args.lengths, args.epoch_chars, args.batch, args.hidden = [4, 16], 400, 4, 16
        args.path = args.path or write_tiny_text(Path(args.out) / "tiny.txt")
    rows, curves = [], {}
    for k in args.lengths:
        out = Path(args.out) / f"k{k}"
        batches = max(1, args.epoch_chars // (args.batch * k))
        overrides = [
            "experiment=text_lstm",
            f"data.seq_len={k}",
            f"data.batch_size={args.batch}",
            f"model.hidden_size={args.hidden}",
            "model.num_layers=1",
            f"trainer.max_epochs={epochs}",
            "trainer.max_time=null",
            "trainer.val_check_interval=null",
            f"+trainer.limit_train_batches={batches}",
            f"+trainer.limit_val_batches={1.0 if args.tiny else 0.2}",
            "trainer.num_sanity_val_steps=0",
            "+callbacks.epoch_timer._target_=rnnlab.cli.callbacks.EpochTimer",
            f"seed={args.seed}",
            "threads=2",
            f"paths.output_dir={out}",
            *QUIET,
        ]
        if args.path:
            overrides += ["data.corpus=text", f"data.path={args.path}"]
        metrics, task = rnnlab.train(rnnlab.compose(overrides))
        _, seconds = epoch_series(out / "metrics.csv", "time/train_epoch_seconds")
        curves[k] = epoch_series(out / "metrics.csv", "val/loss")
        batch = next(iter(task.trainer.datamodule.train_dataloader()))
        rows.append(
            {
                "k": k,
                "steps_per_epoch": batches,
                "chars_per_epoch": batches * args.batch * k,
                "val_nats_per_char": round(metrics["val/loss_best"], 4),
                "test_nats_per_char": round(metrics["test/loss"], 4),
                "train_seconds_per_epoch": round(statistics.median(seconds), 2),
                "saved_for_backward_mb": round(saved_for_backward_bytes(task.cpu(), batch) / 2**20, 3),
                "epochs": epochs,
            }
        )
        print(rows[-1], flush=True)
    write_csv(rows, results / "results.csv")
    plot(rows, curves, results / "truncated-bptt.png")


def plot(rows: list[dict], curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for k, (xs, ys) in curves.items():
        axes[0].plot([x + 1 for x in xs], ys, marker="o", label=f"k={k}")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("validation nats/char")
    axes[0].legend(fontsize=8)
    ks = [r["k"] for r in rows]
    axes[1].plot(ks, [r["train_seconds_per_epoch"] for r in rows], marker="o")
    axes[1].set_ylabel("seconds per epoch (training batches)")
    axes[2].plot(ks, [r["saved_for_backward_mb"] for r in rows], marker="o")
    axes[2].set_ylabel("MB saved for backward, one step")
    for ax in axes[1:]:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("truncation length k")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Truncated BPTT: character LSTM on Austen, the same characters per epoch for every k")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
