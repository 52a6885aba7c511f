"""rnnlab-bench: time the backends side by side, forward and forward+backward, over a grid of rows.

    rnnlab-bench --quick --device cpu                      # about 15 seconds on 2 cores
    rnnlab-bench --device cuda --csv bench-cuda.csv --plot bench-cuda.png
    python -m rnnlab.bench --cells lstm --dtypes bf16 --backends triton cudnn

Prints one line per (row, backend) with each time and its ratio to cudnn (torch.nn's own implementation;
< 1 means faster), writes a CSV, and a PNG when --plot is given. A backend that fails on a row shows its
error in that row and the run goes on.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from pathlib import Path

import torch

from .grid import Row, grid
from .measure import device_ms, make_case, peak_memory_mb, relative_error, steps_for, time_cpu, time_cuda
from .report import markdown, plot, table, write_csv

ALL_BACKENDS = ["cudnn", "reference", "triton", "loop"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rnnlab-bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a small grid: ~15 s on a 2-core CPU, <3 on a GPU"
    )
    parser.add_argument("--cells", nargs="+", choices=["lstm", "gru", "rnn"], default=["lstm", "gru", "rnn"])
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=["fp32", "bf16", "fp16"],
        default=None,
        help="default: fp32 (quick) or fp32 bf16 on the CPU; fp32 bf16 (quick) or all on CUDA",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=ALL_BACKENDS,
        default=None,
        help="default: cudnn reference (+ loop unless --quick) on the CPU; cudnn triton reference on CUDA",
    )
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=None,
        metavar="B,T,I,H",
        help="only the grid's rows of these shapes (e.g. 16,1024,128,128)",
    )
    parser.add_argument("--reps", type=int, default=None, help="CPU repetitions per backend (median taken)")
    parser.add_argument("--csv", type=Path, default=None, help="default: bench-<device>.csv")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG of the fwd+bwd ratios here")
    parser.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible here; use --device cpu")
    if args.backends is None:
        if args.device == "cuda":
            args.backends = ["cudnn", "triton", "reference"]
        else:
            args.backends = ["cudnn", "reference"] + ([] if args.quick else ["loop"])
    if "cudnn" not in args.backends:
        args.backends = ["cudnn", *args.backends]  # every ratio is to cudnn
    if args.shapes is not None:
        try:
            args.shapes = {tuple(int(v) for v in shape.split(",")) for shape in args.shapes}
        except ValueError:
            parser.error(f"--shapes: expected B,T,I,H integers, got {args.shapes}")
        if any(len(shape) != 4 for shape in args.shapes):
            parser.error(f"--shapes: expected four integers B,T,I,H each, got {sorted(args.shapes)}")
        if any(v < 1 for shape in args.shapes for v in shape):
            parser.error(f"--shapes: B,T,I,H must each be >= 1, got {sorted(args.shapes)}")
    if args.reps is not None and args.reps < 1:
        parser.error(f"--reps: must be >= 1 (the median of that many timings is taken), got {args.reps}")
    if args.reps is None:
        args.reps = 5 if args.quick else 9
    if args.csv is None:
        args.csv = Path(f"bench-{args.device}.csv")
    return args


def measure_row(row: Row, args) -> list[dict]:
    """Every backend on one row; errors are caught per backend and per measurement."""
    layer, x, grad_out = make_case(row, args.device)
    results = {
        b: {
            "fwd_ms": math.nan,
            "fwd_bwd_ms": math.nan,
            "fwd_bwd_device_ms": math.nan,
            "peak_mb": None,
            "max_err": None,
            "error": None,
        }
        for b in args.backends
    }
    fns, outputs = {}, {}
    for backend in args.backends:
        forward, forward_backward = steps_for(layer, backend, x, grad_out)
        try:  # one call each first: a backend that cannot run this row is reported, not timed
            outputs[backend] = forward().float()
            forward_backward()
            fns[backend] = (forward, forward_backward)
        except Exception as err:  # noqa: BLE001 - any failure is reported in the row
            results[backend]["error"] = f"{type(err).__name__}: {err}".replace("\n", " ")
    if "cudnn" in outputs:  # a fast wrong answer would be worthless: each output against torch.nn's
        ref = outputs["cudnn"]
        for backend, out in outputs.items():
            results[backend]["max_err"] = relative_error(out, ref)
    if args.device == "cpu":
        warmup = 1 if args.quick else 2
        for kind, index in (("fwd_ms", 0), ("fwd_bwd_ms", 1)):
            times = time_cpu({b: f[index] for b, f in fns.items()}, warmup, args.reps)
            for backend, ms in times.items():
                results[backend][kind] = ms
    else:
        for backend, (forward, forward_backward) in fns.items():
            results[backend]["fwd_ms"] = time_cuda(forward)
            results[backend]["fwd_bwd_ms"] = time_cuda(forward_backward)
            results[backend]["peak_mb"] = peak_memory_mb(forward_backward)
            results[backend]["fwd_bwd_device_ms"] = device_ms(forward_backward)
    base = results["cudnn"]
    rows = []
    for backend, r in results.items():
        rows.append(
            {
                "cell": row.cell,
                "batch": row.batch,
                "steps": row.steps,
                "input_size": row.input_size,
                "hidden": row.hidden,
                "dtype": row.dtype,
                "backend": backend,
                **r,
                "fwd_ratio": r["fwd_ms"] / base["fwd_ms"],
                "fwd_bwd_ratio": r["fwd_bwd_ms"] / base["fwd_bwd_ms"],
            }
        )
    return rows


def describe_device(device: str) -> str:
    torch_info = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device == "cuda":
        from rnnlab.kernels.common import cudnn_rnn_tf32  # (no Triton import)

        tf32 = "on" if cudnn_rnn_tf32() else "off"  # cudnn and triton fp32 both follow it
        return f"{torch.cuda.get_device_name(0)} | {torch_info} | fp32 TF32 {tf32}"
    return f"{platform.processor() or platform.machine()} CPU | {torch_info}"


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = grid(args.device, args.quick, args.cells, args.dtypes)
    if args.shapes is not None:
        rows = [r for r in rows if (r.batch, r.steps, r.input_size, r.hidden) in args.shapes]
        if not rows:
            print(f"rnnlab-bench: no row of the grid has a shape in --shapes {sorted(args.shapes)}")
            return 2
    print(f"rnnlab-bench on {describe_device(args.device)}: {len(rows)} rows x {args.backends}", flush=True)
    results: list[dict] = []
    for row in rows:
        row_results = measure_row(row, args)
        results += row_results
        print(table(row_results).split("\n", 2)[-1], flush=True)  # progress: this row's lines only
    print()
    print(table(results))
    if args.markdown:
        print()
        print(markdown(results))
    write_csv(results, args.csv)
    print(f"\nCSV: {args.csv}")
    if args.plot:
        plot(results, args.plot, f"rnnlab-bench, {describe_device(args.device)}")
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
