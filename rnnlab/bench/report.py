"""The benchmark's outputs: a printed table, a CSV, and optionally a PNG of the ratios to cudnn."""

from __future__ import annotations

import csv
import math
from pathlib import Path

FIELDS = [
    "cell",
    "batch",
    "steps",
    "input_size",
    "hidden",
    "dtype",
    "backend",
    "fwd_ms",
    "fwd_bwd_ms",
    "fwd_ratio",
    "fwd_bwd_ratio",
    "fwd_bwd_device_ms",
    "peak_mb",
    "max_err",
    "error",
]


def _fmt(value, digits=2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


COLUMNS = ["cell", "B", "T", "I", "H", "dtype", "backend"]
COLUMNS += ["fwd ms", "x cudnn", "fwd+bwd ms", "x cudnn", "fwd+bwd device ms", "peak MB", "max err", "error"]


def _values(r: dict) -> list[str]:
    """One result as the strings of COLUMNS (a long error cut to its first 60 characters)."""
    shape = [str(r[k]) for k in ("cell", "batch", "steps", "input_size", "hidden", "dtype", "backend")]
    timed = ("fwd_ms", "fwd_ratio", "fwd_bwd_ms", "fwd_bwd_ratio", "fwd_bwd_device_ms")
    timings = [_fmt(r.get(k)) for k in timed]
    max_err, error = r.get("max_err"), (r["error"] or "")[:60]
    return shape + timings + [_fmt(r["peak_mb"], 1), "-" if max_err is None else f"{max_err:.1e}", error]


def _label(r: dict) -> str:
    return f"{r['cell']} {r['batch']}x{r['steps']}x{r['input_size']}x{r['hidden']} {r['dtype']}"


def table(results: list[dict]) -> str:
    """One line per (row, backend): times in ms and the ratio to cudnn (< 1 is faster than cudnn)."""
    lines = [COLUMNS] + [_values(r) for r in results]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def markdown(results: list[dict]) -> str:
    """The table's columns, error included, as a markdown table (a ``|`` inside a cell escaped)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in _values(r)) + " |" for r in results]
    return "\n".join(lines)


def write_csv(results: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for r in results:
            writer.writerow({k: r.get(k) for k in FIELDS})


def read_column(path: Path, column: str) -> dict[tuple, dict[str, float]]:
    """One numeric column of a CSV that ``write_csv`` wrote: {(cell, B, T, I, H, dtype): {backend: value}},
    rows where the column is empty (a backend that failed, peak memory off CUDA) left out."""
    table: dict[tuple, dict[str, float]] = {}
    with path.open() as handle:
        for r in csv.DictReader(handle):
            if r[column]:
                shape = tuple(int(r[k]) for k in ("batch", "steps", "input_size", "hidden"))
                table.setdefault((r["cell"], *shape, r["dtype"]), {})[r["backend"]] = float(r[column])
    return table


def plot(results: list[dict], path: Path, title: str) -> None:
    """Grouped bars: each row's fwd+bwd time relative to cudnn, one bar per non-cudnn backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(_label(r) for r in results))
    backends = [b for b in dict.fromkeys(r["backend"] for r in results) if b != "cudnn"]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels) + 2), 4.5))
    width = 0.8 / max(1, len(backends))
    for k, backend in enumerate(backends):
        ratios = []
        for label in labels:
            match = [r for r in results if r["backend"] == backend and _label(r) == label]
            ratio = match[0]["fwd_bwd_ratio"] if match else None
            ratios.append(ratio if ratio is not None and not math.isnan(ratio) else 0.0)
        ax.bar([i + k * width for i in range(len(labels))], ratios, width, label=backend)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--", label="cudnn (torch.nn)")
    ax.set_xticks([i + width * (len(backends) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("forward+backward time / cudnn's")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
