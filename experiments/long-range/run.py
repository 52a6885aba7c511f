"""Long-range dependencies: the adding problem and copy-after-delay, swept over length x cell, with
rnnlab-train's Hydra multirun (joblib, two trials at a time) and rnnlab-report.

For each task one sweep, ``experiment=<task>_lstm model.cell=rnn,gru,lstm`` x ``data.seq_len`` (adding) or
``data.delay`` (copy), every trial 8 epochs (1,256 steps of 64 sequences; the presets' 10 would not fit in
30 minutes). Writes
results.csv (one row per trial), long-range.png (test MSE / accuracy against length) and the sweeps'
report.md tables into --results; the sweeps go to --out. If every trial fails (a crash, a bad config) it
writes nothing into --results and exits with status 1:

    nice -n 19 python experiments/long-range/run.py                # ~15 min on 2 CPU cores
    python experiments/long-range/run.py --tiny --results /tmp/lr  # seconds: what the tests run
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.cli import report
from rnnlab.experiment import QUIET, multirun
from rnnlab.tasks.curves import write_csv

HERE = Path(__file__).parent
TASKS = {  # task -> (the swept data key, the test metric, its value for a model that learnt nothing)
    "adding": ("data.seq_len", "test/loss", 1 / 6),
    "copy": ("data.delay", "test/acc", 1 / 8),
}
# task -> the shortest length its data module accepts, and why (rnnlab.data.synthetic)
SHORTEST = {
    "adding": (2, "the adding problem's T needs one marker in each half"),
    "copy": (1, "copy's delay"),
}
TINY = ["data.sizes=[64,16,16]", "data.batch_size=16", "model.hidden_size=8", "trainer.max_epochs=1"]


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Stop with a usage error (exit status 2), before anything is trained, on a value no trial accepts."""
    low, why = max(SHORTEST[task] for task in args.tasks)
    if bad := [length for length in args.lengths if length < low]:
        parser.error(f"--lengths must be >= {low} ({why}), got {' '.join(map(str, bad))}")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--cells", nargs="+", default=["rnn", "gru", "lstm"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[10, 50, 100, 200, 500])
    parser.add_argument("--epochs", type=int, default=8, help="epochs of 157 steps for every trial")
    parser.add_argument("--tiny", action="store_true", help="lengths 4 and 8, tiny data, one epoch")
    parser.add_argument("--out", default="outputs/long-range")
    parser.add_argument("--results", default=str(HERE))
    args = parser.parse_args()
    check_args(parser, args)
    lengths = [4, 8] if args.tiny else args.lengths
    extra = TINY if args.tiny else ["launcher=joblib", f"trainer.max_epochs={args.epochs}"]
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    rows, reports = [], {}
    for task in args.tasks:
        key, metric, chance = TASKS[task]
        folder = Path(args.out) / task
        overrides = [
            # Longest first, so that the two workers finish together instead of one waiting on a T=500 trial.
            f"{key}=" + ",".join(map(str, sorted(lengths, reverse=True))),
            f"experiment={task}_lstm",  # <task>_rnn and <task>_gru are this preset with another cell
            "model.cell=" + ",".join(args.cells),
            "plot=false",
            *QUIET,
            *extra,
        ]
        runs = multirun(overrides, folder)
        reports[task] = report.report(folder, metric=metric)["md"].read_text()
        for run in runs:
            config, metrics = run["config"], run["metrics"]
            length = config["data"]["delay" if task == "copy" else "seq_len"]
            rows.append(
                {
                    "task": task,
                    "cell": config["model"]["cell"],
                    "length": length,
                    "seq_len": length + 2 * config["data"]["copy_len"] if task == "copy" else length,
                    "status": run["status"],
                    "metric": metric,
                    "value": round(float(metrics.get(metric, "nan")), 5),
                    "chance": round(chance, 5),
                    "steps": metrics.get("steps"),
                    "train_minutes": round(metrics.get("train_seconds", float("nan")) / 60, 2),
                }
            )
    if not any(r["status"] == "ok" for r in rows):  # leave the committed results as they are
        raise SystemExit(f"all {len(rows)} trials failed: the errors are in {args.out}/<task>/report.md")
    for task, md in reports.items():
        (results / f"report-{task}.md").write_text(md)
    rows.sort(key=lambda r: (args.tasks.index(r["task"]), args.cells.index(r["cell"]), r["length"]))
    write_csv(rows, results / "results.csv")
    plot(rows, results / "long-range.png")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        mine = [r for r in rows if r["task"] == task]
        for cell in dict.fromkeys(r["cell"] for r in mine):
            points = sorted((r["length"], r["value"]) for r in mine if r["cell"] == cell)
            ax.plot(*zip(*points, strict=True), marker="o", label=cell)
        ax.axhline(mine[0]["chance"], color="grey", linestyle=":", label="learnt nothing")
        ax.set_xscale("log")
        ax.set_xlabel("sequence length T" if task == "adding" else "delay (T = delay + 6)")
        ax.set_ylabel(mine[0]["metric"])
        ax.set_title("adding problem (lower is better)" if task == "adding" else "copy (higher is better)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
