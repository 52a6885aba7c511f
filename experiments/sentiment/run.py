"""Sentiment (many-to-one) on the Rotten Tomatoes snippets: LSTM (default), GRU and RNN side by side.

Regenerates results.csv and curve.png in this folder; run directories (checkpoints, metrics.csv, split.json)
go to outputs/sentiment/<cell>:

    nice -n 19 python experiments/sentiment/run.py            # ~10 min on 2 CPU cores, all three cells
    python experiments/sentiment/run.py --cells lstm --max-minutes 10
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.tasks import sentiment
from rnnlab.tasks.curves import plot_curves, write_csv

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=12)
    parser.add_argument("--max-minutes", type=float, default=10.0, help="training time limit per cell")
    parser.add_argument("--out", default="outputs/sentiment")
    args = parser.parse_args()
    rows, runs = [], {}
    for cell in args.cells:
        run_dir = Path(args.out) / cell
        results = sentiment.fit(
            run_dir, cell=cell, seed=args.seed, max_epochs=args.max_epochs, max_minutes=args.max_minutes
        )
        runs[cell] = run_dir
        rows.append(
            {
                "cell": cell,
                "test_acc": round(results["test/acc"], 4),
                "test_f1": round(results["test/f1"], 4),
                "best_val_acc": round(results["best_score"], 4),
                "epochs": results["epochs"],
                "train_minutes": round(results["train_seconds"] / 60, 2),
                "parameters": results["parameters"],
                "seed": args.seed,
            }
        )
        print(rows[-1], flush=True)
    write_csv(rows, HERE / "results.csv")
    plot_curves(
        runs,
        ["train/loss_epoch", "val/loss", "val/acc"],
        HERE / "curve.png",
        title="Sentiment (movie snippets), bidirectional 1-layer, max pooling",
    )


if __name__ == "__main__":
    main()
