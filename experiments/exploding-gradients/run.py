"""Exploding gradients: an Elman RNN (tanh) whose recurrent matrix starts with spectral radius 3, trained
with plain SGD on the adding problem without gradient clipping, clipping the norm, and clipping each value.

Three runs of the adding_rnn preset (rnnlab.compose + rnnlab.train) that differ only in the Trainer's
``gradient_clip_val`` / ``gradient_clip_algorithm``. The gradient norm logged every step (train/grad_norm) is
the one before clipping. The divergence guard is off, so a run that explodes is seen to the end. Writes
results.csv (one row per run), traces.csv (loss and gradient norm per step) and traces.png into --results;
run folders go to --out:

    nice -n 19 python experiments/exploding-gradients/run.py                # ~25 s on 2 CPU cores
    python experiments/exploding-gradients/run.py --tiny --results /tmp/eg  # seconds: what the tests run
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from pathlib import Path

import rnnlab
from rnnlab.experiment import QUIET
from rnnlab.tasks.curves import write_csv

HERE = Path(__file__).parent
CLIPPING = {  # label -> the Trainer's clipping overrides
    "no clipping": ["trainer.gradient_clip_val=null"],
    "clip norm at 1": ["trainer.gradient_clip_val=1.0", "+trainer.gradient_clip_algorithm=norm"],
    "clip values at 0.1": ["trainer.gradient_clip_val=0.1", "+trainer.gradient_clip_algorithm=value"],
}


def rounded(x: float) -> float:
    return float(f"{x:.4g}")


def step_traces(metrics_csv: Path) -> list[dict]:
    """(step, train loss, gradient norm before clipping) for every training step of a run."""
    rows: dict[int, dict] = {}
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            for name, key in (("train/loss_step", "loss"), ("train/grad_norm", "grad_norm")):
                if row.get(name):
                    rows.setdefault(int(row["step"]), {"step": int(row["step"])})[key] = float(row[name])
    return [rows[s] for s in sorted(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radius", type=float, default=3.0, help="initial spectral radius of W_hh")
    parser.add_argument("--seq-len", type=int, default=10, help="T of the adding problem")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of 157 steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny data, one epoch: for the tests")
    parser.add_argument("--out", default="outputs/exploding-gradients")
    parser.add_argument("--results", default=str(HERE))
    args = parser.parse_args()
    tiny = ["data.sizes=[256,16,16]", "data.batch_size=16"] if args.tiny else []
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    rows, traces = [], {}
    for label, clipping in CLIPPING.items():
        out = Path(args.out) / label.replace(" ", "-")
        cfg = rnnlab.compose(
            [
                "experiment=adding_rnn",
                "optim=sgd",
                f"optim.lr={args.lr}",
                f"model.spectral_radius={args.radius}",
                f"data.seq_len={args.seq_len}",
                f"trainer.max_epochs={1 if args.tiny else args.epochs}",
                "trainer.log_every_n_steps=1",
                "callbacks.divergence_guard=null",
                f"seed={args.seed}",
                "threads=1",
                f"paths.output_dir={out}",
                *clipping,
                *QUIET,
                *tiny,
            ]
        )
        metrics, _ = rnnlab.train(cfg)
        traces[label] = step_traces(out / "metrics.csv")
        norms = [t["grad_norm"] for t in traces[label] if "grad_norm" in t]
        losses = [t["loss"] for t in traces[label] if "loss" in t]
        finite = [n for n in norms if math.isfinite(n)]
        first_bad = next((t["step"] for t in traces[label] if not math.isfinite(t.get("loss", 0.0))), None)
        rows.append(
            {
                "clipping": label,
                "steps": len(norms),
                "first_nonfinite_loss_step": first_bad,
                "max_grad_norm": rounded(max(finite, default=math.nan)),
                "median_grad_norm": rounded(statistics.median(finite) if finite else math.nan),
                "final_train_loss": rounded(losses[-1]),
                "best_val_mse": rounded(metrics["val/loss_best"]),
                "test_mse": rounded(metrics["test/loss"]),
            }
        )
        print(rows[-1], flush=True)
    write_csv(rows, results / "results.csv")
    write_csv([{"clipping": k, **t} for k, ts in traces.items() for t in ts], results / "traces.csv")
    plot(traces, results / "traces.png", f"RNN (tanh), spectral radius {args.radius:g}, SGD lr {args.lr:g}")


def plot(traces: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, trace in traces.items():
        for ax, key in zip(axes, ("loss", "grad_norm"), strict=True):
            points = [(t["step"], t[key]) for t in trace if key in t and math.isfinite(t[key])]
            if points:
                ax.semilogy(*zip(*points, strict=True), label=label, linewidth=0.8)
        bad = next((t["step"] for t in trace if not math.isfinite(t.get("loss", 0.0))), None)
        if bad is not None:
            axes[0].axvline(bad, color="black", linewidth=0.8, linestyle="--")
            axes[0].annotate(f" {label}: loss not finite from step {bad}", (bad, 3e2), fontsize=8)
    axes[0].axhline(1 / 6, color="grey", linestyle=":", label="predict 1 (MSE 1/6)")
    axes[0].set_ylim(1e-2, 1e3)
    axes[0].set_title("training loss (MSE) per step (clipped at 1e3 on the plot)")
    axes[1].set_title("gradient norm per step, before clipping")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
