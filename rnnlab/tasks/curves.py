"""Learning curves from CSVLogger histories: the per-epoch series and a PNG with one panel per metric."""

from __future__ import annotations

import csv
from pathlib import Path


def epoch_series(metrics_csv: str | Path, name: str, x: str = "epoch") -> tuple[list[float], list[float]]:
    """(x, value) for every row of a CSVLogger ``metrics.csv`` where ``name`` was logged."""
    xs, ys = [], []
    with open(metrics_csv) as f:
        for row in csv.DictReader(f):
            if row.get(name) not in (None, "") and row.get(x) not in (None, ""):
                xs.append(float(row[x]))
                ys.append(float(row[name]))
    return xs, ys


def plot_curves(
    runs: dict[str, str | Path], metrics: list[str], out_png: str | Path, title: str = "", x: str = "epoch"
) -> None:
    """One panel per metric, one line per run (label -> run directory holding metrics.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for label, run_dir in runs.items():
            xs, ys = epoch_series(Path(run_dir) / "metrics.csv", metric, x)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        ax.set_xlabel(x)
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Rows of dicts as a CSV with the union of their keys, in first-seen order."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
