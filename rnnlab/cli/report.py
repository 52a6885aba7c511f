"""rnnlab-report: every run of a sweep (config, status, metrics) in one table, CSV and markdown, and a plot.

    rnnlab-report outputs/sentiment_lstm/multiruns/2026-01-01_12-00-00
    rnnlab-report <sweep folder> --metric test/acc --out reports/

Reads each trial's result.json (written by rnnlab-train: status ok/failed, the error, the metrics, the
overrides and the resolved config). A trial folder without one (killed before it could write it) is listed
as ``missing``. Writes ``report.csv`` (every config key), ``report.md`` (the swept keys only) and
``report.png`` (the metric against the swept keys) into the sweep folder, or ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..tasks.curves import write_csv

METRIC_ORDER = ("test/", "val/")
SUMMARY_KEYS = ("epochs", "steps", "train_seconds", "parameters")


def load_runs(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per trial folder: ``run``, ``status``, ``error``, ``metrics``, ``overrides``, ``config``."""
    sweep_dir = Path(sweep_dir)
    folders = {p.parent for p in sweep_dir.glob("*/result.json")}
    folders |= {p.parent for p in sweep_dir.glob("*/.hydra")}
    runs = []
    for folder in sorted(folders, key=_natural):
        file = folder / "result.json"
        if file.exists():
            result = json.loads(file.read_text())
        else:
            result = {
                "status": "missing",
                "error": "no result.json: the trial was killed or is still running",
            }
            overrides = folder / ".hydra" / "overrides.yaml"
            if overrides.exists():
                from omegaconf import OmegaConf

                result["overrides"] = list(OmegaConf.load(overrides))
        result["run"] = folder.name
        result.setdefault("metrics", {})
        result.setdefault("overrides", [])
        result.setdefault("config", {})
        runs.append(result)
    return runs


def swept_keys(runs: list[dict]) -> list[str]:
    """The override keys whose values differ between runs, in command-line order (what the sweep varied)."""
    keys: list[str] = []
    values: dict[str, set] = {}
    for run in runs:
        for key, value in _parse_overrides(run["overrides"]).items():
            if key not in keys:
                keys.append(key)
            values.setdefault(key, set()).add(value)
    varying = [
        k for k in keys if len(values[k]) > 1 or any(k not in _parse_overrides(r["overrides"]) for r in runs)
    ]
    if varying or not runs:
        return varying
    # No overrides recorded (runs composed from code): fall back on the config keys that differ.
    flat = [_flatten(r["config"]) for r in runs]
    every = [k for k in flat[0] if not k.startswith(("paths.", "hydra."))]
    return [k for k in every if len({_hashable(f.get(k)) for f in flat}) > 1 and not _is_run_path(k, flat)]


def build_table(runs: list[dict], metric: str) -> tuple[list[dict], list[str], list[str]]:
    """Rows for the CSV, the swept keys, and the metric columns."""
    swept = swept_keys(runs)
    metric_keys: list[str] = []
    for run in runs:
        for key, value in run["metrics"].items():
            if key not in metric_keys and key.startswith(METRIC_ORDER) and _number(value) is not None:
                metric_keys.append(key)
    metric_keys.sort(key=lambda k: (k != metric, not k.startswith("test/"), k))
    rows = []
    for run in runs:
        overrides = _parse_overrides(run["overrides"])
        flat = _flatten(run["config"])
        row: dict[str, Any] = {"run": run["run"], "status": run["status"]}
        for key in swept:
            row[key] = overrides.get(key, flat.get(key, ""))
        for key in metric_keys:
            row[key] = _number(run["metrics"].get(key))
        for key in SUMMARY_KEYS:
            row[key] = run["metrics"].get(key)
        row["error"] = run.get("error", "")
        for key, value in flat.items():
            row.setdefault(key, value)
        rows.append(row)
    return rows, swept, metric_keys


def markdown(rows: list[dict], swept: list[str], metric_keys: list[str]) -> str:
    columns = ["run", *swept, "status", *metric_keys, *SUMMARY_KEYS[:3], "error"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key in columns:
            value = row.get(key)
            if isinstance(value, float):
                value = "" if math.isnan(value) else f"{value:.4g}"
            text = "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")
            cells.append(text[:120])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], swept: list[str], metric: str, path: Path, title: str = "") -> None:
    """The metric against the first swept key, one line per value of the second (failed runs left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] == "ok" and _number(r.get(metric)) is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if swept:
        x_key = swept[0]
        series_key = swept[1] if len(swept) > 1 else None
        x_values = list(dict.fromkeys(str(r[x_key]) for r in rows))  # launch order, numbers sorted
        if all(_number(x) is not None for x in x_values):
            x_values.sort(key=_sort_key)
        groups: dict[str, list[dict]] = {}
        for row in ok:
            groups.setdefault(str(row[series_key]) if series_key else metric, []).append(row)
        for label, group in sorted(groups.items(), key=lambda item: _sort_key(item[0])):
            points = sorted((x_values.index(str(r[x_key])), r[metric]) for r in group)
            ax.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                marker="o",
                label=f"{series_key}={label}" if series_key else label,
            )
        ax.set_xticks(range(len(x_values)), x_values)
        ax.set_xlabel(x_key)
        if series_key:
            ax.legend()
    else:
        ax.plot(range(len(ok)), [r[metric] for r in ok], marker="o")
        ax.set_xlabel("run")
    failed = len(rows) - len(ok)
    ax.set_ylabel(metric)
    ax.set_title(
        (title + "\n" if title else "") + f"{len(ok)} runs" + (f", {failed} failed" if failed else "")
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(
    sweep_dir: str | Path, metric: str | None = None, out: str | Path | None = None
) -> dict[str, Path]:
    """Write report.csv, report.md and report.png for a sweep folder; returns their paths."""
    sweep_dir = Path(sweep_dir)
    runs = load_runs(sweep_dir)
    if not runs:
        raise SystemExit(f"rnnlab-report: no trial folders (*/result.json or */.hydra) in {sweep_dir}")
    if metric is None:
        metric = next((r["config"].get("optimized_metric") for r in runs if r["config"]), None) or "val/loss"
    rows, swept, metric_keys = build_table(runs, metric)
    out = Path(out) if out else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "report.csv", "md": out / "report.md", "png": out / "report.png"}
    write_csv(rows, paths["csv"])
    paths["md"].write_text(markdown(rows, swept, metric_keys))
    plot(rows, swept, metric, paths["png"], title=sweep_dir.name)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="rnnlab-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a multirun folder: outputs/<name>/multiruns/<time>")
    parser.add_argument("--metric", help="the metric to plot (default: the runs' optimized_metric)")
    parser.add_argument("--out", help="where to write report.{csv,md,png} (default: the sweep folder)")
    args = parser.parse_args(argv)
    paths = report(args.sweep_dir, args.metric, args.out)
    print(paths["md"].read_text())
    print("\n".join(f"{kind:<4} {path}" for kind, path in paths.items()))


def _parse_overrides(overrides: list[str]) -> dict[str, str]:
    parsed = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        number = _number(value)
        parsed[key.lstrip("+~")] = value if number is None else int(number) if number.is_integer() else number
    return parsed


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        flat: dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def _is_run_path(key: str, flat: list[dict]) -> bool:
    """A key whose value is inside each run's own folder (a checkpoint dir, a log dir) varies by design."""
    return all(
        isinstance(f.get(key), str) and str(f.get("paths.output_dir", "\0")) in f[key]
        for f in flat
        if key in f
    )


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def _sort_key(text: str) -> tuple:
    number = _number(text)
    return (0, number, "") if number is not None else (1, 0.0, text)


def _natural(path: Path) -> tuple:
    return _sort_key(path.name)


if __name__ == "__main__":
    main()
