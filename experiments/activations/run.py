"""Activations: the Elman RNN with sigmoid, tanh and relu on the same task, the adding problem, at two
lengths and three seeds, with rnnlab-train's Hydra multirun (joblib, two trials at a time).

One sweep: ``experiment=adding_rnn model.nonlinearity=sigmoid,tanh,relu data.seq_len=... seed=0,1,2``,
every trial the preset's 10 epochs of 157 steps (Adam, lr 1e-2, clipping at norm 1). Writes results.csv
(one row per trial, status ok, diverged or failed), summary.csv (mean and spread over the seeds, diverged
trials counted apart), activations.png (validation MSE per epoch, the mean over the trials that did not
diverge) and report.md into --results; the sweep goes to --out. A trial that failed for another reason than
a diverged loss (a crash, a bad config) is no result: it is left out of summary.csv (``seeds`` counts the
trials that trained), named on stderr, and if every trial failed nothing is written and the exit status is 1:

    nice -n 19 python experiments/activations/run.py                # ~2.5 min on 2 CPU cores
    python experiments/activations/run.py --tiny --results /tmp/ac  # seconds: what the tests run
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from rnnlab.cli import report
from rnnlab.experiment import QUIET, multirun
from rnnlab.tasks.curves import epoch_series, write_csv

HERE = Path(__file__).parent
NONLINEARITIES = ("sigmoid", "tanh", "relu")
TINY = ["data.sizes=[64,16,16]", "data.batch_size=16", "model.hidden_size=8", "trainer.max_epochs=2"]


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error (exit status 2), before anything is trained, on a value no trial accepts."""
    if bad := [length for length in args.lengths if length < 2]:
        # rnnlab.data.AddingDataModule: one marker in each half of the sequence
        parser.error(f"--lengths must be >= 2 (one marker in each half of T), got {' '.join(map(str, bad))}")
    if bad := [seed for seed in args.seeds if not 0 <= seed < 2**32]:
        parser.error(
            f"--seeds must be in [0, 2**32 - 1] (what Lightning seeds with), got {' '.join(map(str, bad))}"
        )


def outcome(run: dict) -> str:
    """ok, diverged (rnnlab's DivergenceGuard stopped a non-finite loss: a result) or failed (no result)."""
    if run["status"] == "failed" and run.get("error", "").startswith("DivergedError"):
        return "diverged"
    return run["status"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 30, 100], help="T, the adding length")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tiny", action="store_true", help="T=5, one seed, tiny data: for the tests")
    parser.add_argument("--out", default="outputs/activations")
    parser.add_argument("--results", default=str(HERE))
    args = parser.parse_args()
    check_args(parser, args)
    lengths, seeds = ([5], [0]) if args.tiny else (args.lengths, args.seeds)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    overrides = [
        "experiment=adding_rnn",
        "model.nonlinearity=" + ",".join(NONLINEARITIES),
        "data.seq_len=" + ",".join(map(str, lengths)),
        "seed=" + ",".join(map(str, seeds)),
        "plot=false",
        *QUIET,
        *(TINY if args.tiny else ["launcher=joblib"]),
    ]
    folder = Path(args.out)
    runs = multirun(overrides, folder)
    md = report.report(folder, metric="test/loss")["md"].read_text()  # in --out; copied below
    failed = [run for run in runs if outcome(run) not in ("ok", "diverged")]
    for run in failed:
        print(f"trial {folder / run['run']} failed: {run.get('error')}", file=sys.stderr)
    if len(failed) == len(runs):  # leave the committed results as they are
        raise SystemExit(f"all {len(runs)} trials failed (not diverged: no result); see {folder}/report.md")
    (results / "report.md").write_text(md)

    rows, curves = [], {}
    for run in runs:
        config = run["config"]
        key = (config["model"]["nonlinearity"], config["data"]["seq_len"])
        rows.append(
            {
                "nonlinearity": key[0],
                "seq_len": key[1],
                "seed": config["seed"],
                "status": outcome(run),
                "test_mse": round(float(run["metrics"].get("test/loss", "nan")), 5),
                "best_val_mse": round(float(run["metrics"].get("val/loss_best", "nan")), 5),
                "epochs": run["metrics"].get("epochs"),
            }
        )
        if run["status"] == "ok":  # a diverged trial is counted, not averaged
            _, val_mse = epoch_series(folder / run["run"] / "metrics.csv", "val/loss")
            curves.setdefault(key, []).append(val_mse)
    summary = []
    for nonlinearity in NONLINEARITIES:
        for length in lengths:
            trials = [r for r in rows if (r["nonlinearity"], r["seq_len"]) == (nonlinearity, length)]
            trials = [r for r in trials if r["status"] in ("ok", "diverged")]  # the failed are no result
            mse = [r["test_mse"] for r in trials if r["status"] == "ok"]
            summary.append(
                {
                    "nonlinearity": nonlinearity,
                    "seq_len": length,
                    "seeds": len(trials),
                    "diverged": len(trials) - len(mse),
                    "test_mse_mean": round(statistics.mean(mse), 5) if mse else float("nan"),
                    "test_mse_min": min(mse, default=float("nan")),
                    "test_mse_max": max(mse, default=float("nan")),
                }
            )
    write_csv(rows, results / "results.csv")
    write_csv(summary, results / "summary.csv")
    plot(curves, lengths, results / "activations.png")


def plot(curves: dict, lengths: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(lengths), figsize=(5 * len(lengths), 4), squeeze=False)
    for ax, length in zip(axes[0], lengths, strict=True):
        for nonlinearity in NONLINEARITIES:
            series = curves.get((nonlinearity, length), [])
            epochs = min((len(s) for s in series), default=0)
            mean = [statistics.mean(s[e] for s in series) for e in range(epochs)]
            ax.plot(range(1, epochs + 1), mean, marker="o", label=f"{nonlinearity} ({len(series)} runs)")
        ax.axhline(1 / 6, color="grey", linestyle=":", label="predict 1 (MSE 1/6)")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation MSE, mean over seeds")
        ax.set_title(f"Elman RNN, adding problem, T = {length}")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
