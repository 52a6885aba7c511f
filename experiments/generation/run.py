"""Character-level generation (one-to-many): Jane Austen's six novels, and O'Neill's folk tunes in ABC.

Regenerates results.csv, curve.png and samples.md in this folder; run directories (checkpoints,
metrics.csv, split.json) go to outputs/generation/<corpus>:

    nice -n 19 python experiments/generation/run.py --backend cudnn     # both: 30 + 10 minutes, 2 CPU cores
    python experiments/generation/run.py --corpora abc --abc-minutes 10
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rnnlab.tasks import generation
from rnnlab.tasks.curves import plot_curves, write_csv

HERE = Path(__file__).parent
MODEL = dict(embedding_dim=64, hidden_size=384, num_layers=2, lr=2e-3)
AUSTEN_PROMPTS = ["It is a truth universally acknowledged", "Emma", "\n\nCHAPTER"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", nargs="+", default=["austen", "abc"], choices=["austen", "abc"])
    parser.add_argument("--cell", default="lstm")
    parser.add_argument(
        "--backend", default="auto", help="layer backend; on the CPU 'cudnn' (oneDNN's LSTM) trains fastest"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--austen-minutes", type=float, default=30.0)
    parser.add_argument("--abc-minutes", type=float, default=10.0)
    parser.add_argument("--tunes", type=int, default=100, help="tunes sampled for the parse rate")
    parser.add_argument("--out", default="outputs/generation")
    parser.add_argument("--results", default=str(HERE), help="where results.csv, curve.png, samples.md go")
    args = parser.parse_args()
    results_dir = Path(args.results)
    rows, runs, samples = [], {}, ["# Samples\n"]
    for corpus in args.corpora:
        run_dir = Path(args.out) / corpus
        minutes = args.austen_minutes if corpus == "austen" else args.abc_minutes
        results = generation.fit(
            run_dir,
            corpus=corpus,
            cell=args.cell,
            seed=args.seed,
            max_epochs=100,
            max_minutes=minutes,
            val_check_interval=100 if corpus == "austen" else None,
            dropout=0.1 if corpus == "austen" else 0.2,
            backend=args.backend,
            **MODEL,
        )
        runs[corpus] = run_dir
        model, tokenizer = generation.load(results["best_checkpoint"])
        row = {
            "corpus": corpus,
            "cell": args.cell,
            "val_nats_per_char": round(results["best_score"], 4),
            "test_nats_per_char": round(results["test/loss"], 4),
            "test_bpc": round(results["test/bpc"], 4),
            "train_minutes": round(results["train_seconds"] / 60, 1),
            "epochs": results["epochs"],
            "parameters": results["parameters"],
            "seed": args.seed,
        }
        if corpus == "austen":
            samples.append("## Austen (temperature 0.7, top-p 0.95; the prompt in bold)\n")
            for i, prompt in enumerate(AUSTEN_PROMPTS):
                text = generation.sample(model, tokenizer, prompt, 600, temperature=0.7, top_p=0.95, seed=i)
                samples.append(f"**{prompt.strip()}**{text}\n\n---\n")
        else:
            tunes = generation.sample_tunes(model, tokenizer, count=args.tunes, seed=args.seed)
            rate = sum(ok for _, ok in tunes) / len(tunes)
            row["tunes_parsing"] = rate
            samples.append(
                f"## O'Neill tunes, each from a header alone (key and metre; temperature 0.8, top-p 0.95)\n\n"
                f"{sum(ok for _, ok in tunes)} of {len(tunes)} sampled tunes parse as ABC "
                "(`rnnlab.data.abc.check_tune`). The first six:\n"
            )
            samples += [f"```abc\n{tune}```\nparses: {ok}\n" for tune, ok in tunes[:6]]
        rows.append(row)
        print(row, f"(perplexity {math.exp(results['test/loss']):.2f})", flush=True)
    write_csv(rows, results_dir / "results.csv")
    (results_dir / "samples.md").write_text("\n".join(samples))
    title = "Character LSTM, nats/char"
    plot_curves(runs, ["train/loss_step", "val/loss"], results_dir / "curve.png", title, x="step")


if __name__ == "__main__":
    main()
