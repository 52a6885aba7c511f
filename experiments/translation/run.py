"""Translation (many-to-many), German -> English on the Ding example sentences: attention vs none.

Regenerates results.csv and curve.png in this folder; run directories (checkpoints, metrics.csv,
split.json, test_output.tsv) go to outputs/translation/<attention>:

    nice -n 19 python experiments/translation/run.py --backend cudnn  # luong, bahdanau, none: 3 x 20 min
    python experiments/translation/run.py --attention luong none --max-minutes 15
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.tasks import translation
from rnnlab.tasks.curves import plot_curves, write_csv

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attention", nargs="+", default=["luong", "bahdanau", "none"])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument(
        "--backend", default="auto", help="layer backend; on the CPU 'cudnn' (oneDNN's LSTM) trains fastest"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--max-minutes", type=float, default=20.0, help="training time limit per model")
    parser.add_argument("--teacher-forcing", type=float, default=1.0)
    parser.add_argument("--beam-size", type=int, default=4)
    parser.add_argument("--out", default="outputs/translation")
    parser.add_argument("--results", default=str(HERE), help="where results.csv and curve.png go")
    args = parser.parse_args()
    rows, runs = [], {}
    for attention in args.attention:
        run_dir = Path(args.out) / attention
        results = translation.fit(
            run_dir,
            attention=None if attention == "none" else attention,
            cell=args.cell,
            seed=args.seed,
            max_epochs=args.max_epochs,
            max_minutes=args.max_minutes,
            teacher_forcing=args.teacher_forcing,
            beam_size=args.beam_size,
            backend=args.backend,
        )
        runs[attention] = run_dir
        rows.append(
            {
                "attention": attention,
                "cell": args.cell,
                "test_bleu_beam": round(results["test/bleu"], 2),
                "best_val_bleu_greedy": round(results["best_score"], 2),
                "copy_source_bleu": round(results["copy_bleu"], 2),
                "test_loss": round(results["test/loss"], 4),
                "epochs": results["epochs"],
                "train_minutes": round(results["train_seconds"] / 60, 1),
                "parameters": results["parameters"],
                "beam_size": args.beam_size,
                "seed": args.seed,
            }
        )
        print(rows[-1], flush=True)
    results_dir = Path(args.results)
    write_csv(rows, results_dir / "results.csv")
    title = "German -> English (Ding), encoder-decoder LSTM"
    plot_curves(runs, ["train/loss_epoch", "val/loss", "val/bleu"], results_dir / "curve.png", title)


if __name__ == "__main__":
    main()
