"""Settings of the kernels' knobs side by side in one process: the same rows, the same layer and data, the
settings interleaved round by round, cuDNN in the same run. Finer than re-running rnnlab-bench once per
setting (each its own process, minutes apart on a shared card).

    python experiments/kernels/knob_ab.py --rows lstm,32,100,64,128,bf16 rnn,16,1024,128,128,fp16 \\
        --settings default RNNLAB_ON_CHIP_BYTES=65536 RNNLAB_PREFETCH=0 --csv ab.csv --profile

A row is cell,B,T,I,H,dtype, with ",bi" appended for a bidirectional layer.

A setting is ``default`` or ``NAME=VALUE[,NAME=VALUE...]`` of the RNNLAB_* variables kernels/launch.py
reads on every call (so one process can switch between them). Each round times every setting of a row
(forward, then forward+backward, as rnnlab.bench.measure defines them), rotating which goes first; the
median over rounds is reported with the spread (max - min) in ms. Each setting's output is checked
against cuDNN's. On CUDA the timer is ``triton.testing.do_bench`` (median); elsewhere the layers run on
the CPU (triton under the interpreter) and perf_counter times one call, which is only good for checking
the script. ``--profile`` prints, per row and setting, the device time of each kernel of one
forward+backward (torch.profiler) beside its wall time: what is the recurrence, what the GEMMs, and how
much of a call the GPU spends waiting for the host.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from rnnlab.bench.grid import DTYPES, Row
from rnnlab.bench.measure import kernel_device_times, make_case, relative_error, steps_for, time_cuda

KNOB_PREFIX = "RNNLAB_"


def parse_row(spec: str) -> Row:
    parts = spec.split(",")
    directions = 1
    if len(parts) == 7 and parts[6] == "bi":  # a bidirectional layer
        parts, directions = parts[:6], 2
    if len(parts) != 6 or parts[0] not in ("lstm", "gru", "rnn") or parts[5] not in DTYPES:
        raise argparse.ArgumentTypeError(
            f"--rows: expected cell,B,T,I,H,dtype[,bi] (cell lstm/gru/rnn, dtype {'/'.join(DTYPES)}), "
            f"got {spec!r}"
        )
    try:
        batch, steps, inputs, hidden = (int(v) for v in parts[1:5])
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows: B, T, I, H must be integers, got {spec!r}") from None
    return Row(parts[0], batch, steps, inputs, hidden, parts[5], directions)


def parse_setting(spec: str) -> dict[str, str]:
    if spec == "default":
        return {}
    knobs = {}
    for item in re.split(f",(?={KNOB_PREFIX})", spec):  # a value may hold commas (RNNLAB_TILE=32,64,4,4)
        name, sep, value = item.partition("=")
        if not sep or not name.startswith(KNOB_PREFIX) or "=" in value:
            raise argparse.ArgumentTypeError(
                f"--settings: expected 'default' or {KNOB_PREFIX}NAME=VALUE[,...], got {spec!r}"
            )
        knobs[name] = value
    return knobs


@contextmanager
def knobs_set(knobs: dict[str, str]):
    """The RNNLAB_* environment exactly ``knobs`` (others unset) inside, restored after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(KNOB_PREFIX)}
    for name in saved:
        del os.environ[name]
    os.environ.update(knobs)
    try:
        yield
    finally:
        for name in [k for k in os.environ if k.startswith(KNOB_PREFIX)]:
            del os.environ[name]
        os.environ.update(saved)


def timer(device: str):
    if device == "cuda":
        return time_cuda

    def once(fn):
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3

    return once


def kernel_times(fn) -> list[tuple[str, float]]:
    """(kernel name, device ms) of one call of ``fn``, largest first, and the call's wall time."""
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    wall = (time.perf_counter() - start) * 1e3
    return kernel_device_times(fn) + [("(wall time of an unprofiled call)", wall)]


@contextmanager
def refused_plans():
    """A list, filled on leaving, of the launch plans the card refused inside the block (kernels/launch.py
    runs each one's fallback instead, and remembers the refusal, so later calls go straight there): a
    setting's times are then its fallback's, which the results say (``refused``). Refusals from before
    the block are set aside while it runs, so that a plan two settings share is reported for each."""
    from rnnlab.kernels import launch

    before, found = set(launch._NO_ROOM), []
    launch._NO_ROOM.clear()
    try:
        yield found
    finally:
        names = (describe_plan(getattr(k, "__name__", str(k)), dict(meta)) for k, _, meta in launch._NO_ROOM)
        found += sorted(names)
        launch._NO_ROOM.update(before)


def describe_plan(kernel: str, meta: dict) -> str:
    """'<kernel> <path> <rows>x<columns>x<depth>[, N stages]' of one launch plan's kernel."""
    path = "on chip" if meta.get("ON_CHIP") else "resident" if meta.get("RESIDENT") else "streamed"
    tiles = "x".join(str(meta.get(k)) for k in ("BLOCK_B", "BLOCK_N", "BLOCK_K"))
    stages = f", {meta['num_stages']} stages" if "num_stages" in meta else ""
    return f"{kernel} {path} {tiles}{stages}"


def measure(row: Row, settings: list[str], rounds: int, device: str, profile_kernels: bool) -> list[dict]:
    layer, x, grad_out = make_case(row, device)
    time_one = timer(device)
    cudnn = steps_for(layer, "cudnn", x, grad_out)
    triton = steps_for(layer, "triton", x, grad_out)
    reference = cudnn[0]().float()
    knobs = {"cudnn": {}, **{spec: parse_setting(spec) for spec in settings}}
    samples = {s: {"fwd": [], "fwd_bwd": []} for s in knobs}
    errors, refusals = {}, {}
    for spec in settings:  # a first call of each: compiles its kernels, checks its output
        with knobs_set(knobs[spec]), refused_plans() as refused:
            try:
                errors[spec] = relative_error(triton[0]().float(), reference)
                triton[1]()
            except Exception as err:  # noqa: BLE001 - one setting that cannot run leaves the others their turn
                reason = (str(err).splitlines() or [""])[0][:200]
                print(f"  {row.label} [{spec}] left out: {type(err).__name__}: {reason}", flush=True)
                del knobs[spec], samples[spec]
        if refused and spec in knobs:
            refusals[spec] = len(refused)
            print(f"  {row.label} [{spec}] ran a fallback: the card refused {'; '.join(refused)}", flush=True)
    for r in range(rounds):
        order = list(knobs)
        order = order[r % len(order) :] + order[: r % len(order)]
        for spec in order:
            fns = cudnn if spec == "cudnn" else triton
            with knobs_set(knobs[spec]):
                samples[spec]["fwd"].append(time_one(fns[0]))
                samples[spec]["fwd_bwd"].append(time_one(fns[1]))
    base = {kind: statistics.median(v) for kind, v in samples["cudnn"].items()}
    results = []
    for spec, kinds in samples.items():
        fwd, both = statistics.median(kinds["fwd"]), statistics.median(kinds["fwd_bwd"])
        results.append(
            {
                "row": row.label,
                "setting": spec,
                "fwd_ms": fwd,
                "fwd_spread_ms": max(kinds["fwd"]) - min(kinds["fwd"]),
                "fwd_bwd_ms": both,
                "fwd_bwd_spread_ms": max(kinds["fwd_bwd"]) - min(kinds["fwd_bwd"]),
                "fwd_ratio": fwd / base["fwd"],
                "fwd_bwd_ratio": both / base["fwd_bwd"],
                "max_err": errors.get(spec, 0.0),
                "refused": refusals.get(spec, 0),
            }
        )
        if profile_kernels and device == "cuda":
            fns = cudnn if spec == "cudnn" else triton
            with knobs_set(knobs[spec]):
                try:
                    for name, ms in kernel_times(fns[1]):
                        print(f"  profile {row.label} [{spec}] {ms:8.3f} ms  {name[:90]}")
                except Exception as err:  # noqa: BLE001 - a profiler that cannot run leaves the timings
                    print(f"  profile {row.label} [{spec}] failed: {type(err).__name__}: {err}")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_row, nargs="+", required=True, metavar="cell,B,T,I,H,dtype[,bi]")
    parser.add_argument("--settings", nargs="+", default=["default"], metavar="SETTING")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--profile", action="store_true", help="device time per kernel of one fwd+bwd")
    args = parser.parse_args(argv)
    for spec in args.settings:
        try:
            parse_setting(spec)
        except argparse.ArgumentTypeError as err:
            parser.error(str(err))
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    results = []
    for row in args.rows:
        rows = measure(row, args.settings, args.rounds, args.device, args.profile)
        for r in rows:
            print(
                f"{r['row']:40s} {r['setting']:32s} fwd {r['fwd_ms']:8.3f} (spread {r['fwd_spread_ms']:.3f}) "
                f"x{r['fwd_ratio']:.2f}  fwd+bwd {r['fwd_bwd_ms']:8.3f} (spread "
                f"{r['fwd_bwd_spread_ms']:.3f}) x{r['fwd_bwd_ratio']:.2f}  err {r['max_err']:.1e}"
                + (f"  ({r['refused']} refused: a fallback's times)" if r["refused"] else ""),
                flush=True,
            )
        results += rows
    if args.csv:
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(results[0]))
            writer.writeheader()
            writer.writerows(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
