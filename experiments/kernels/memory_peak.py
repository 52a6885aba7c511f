"""What is alive at the peak of one forward+backward: the blocks behind the benchmark's `peak MB` column,
each with the line of this project that allocated it.

    python experiments/kernels/memory_peak.py --rows lstm,16,1024,128,128,bf16 gru,16,1024,128,128,bf16
    python experiments/kernels/memory_peak.py --device cpu --rows lstm,16,1024,128,128,bf16   # the model

On CUDA it records the caching allocator's history (torch.cuda.memory._record_memory_history, Python
stacks) around one call, made after two warm-up calls and through rnnlab.bench.measure.peak_memory_mb as
the benchmark's `peak MB` is, replays the trace to the moment of the largest total, and prints the blocks
alive then, grouped by allocating site (the innermost frames in rnnlab/, kernels/ or experiments/; "-"
where the allocation had no Python frame: an autograd node running in C++ on the backward thread). Beside
the replayed peak it prints max_memory_allocated's, which it must equal, and the peak of the bytes the
tensors requested (before the allocator rounds them into blocks). On the CPU the same listing comes
from memory_model.py's count (kernel launches stubbed), so the two can be set side by side: the CPU model
has under-counted the GPU's peak by 5 to 128 MB on most rows (README.md, "Measured: run 4"), and this
shows where.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from knob_ab import parse_row  # noqa: E402
from memory_model import modeled_peak, project_site  # noqa: E402

from rnnlab.bench.measure import make_case, peak_memory_mb, steps_for  # noqa: E402

MB = 2**20


def live_at_peak(trace: list[dict]) -> tuple[int, list[tuple[int, str]]]:
    """(peak bytes, [(bytes, site) of each block alive at the peak]) from an allocator trace (the
    snapshot's ``device_traces`` entry: dicts with action, addr, size, frames, innermost first). Counted
    from the trace's start: blocks allocated before it are not in it. A block counts from its "alloc" to
    its "free_completed" (where the allocator's allocated-bytes statistic drops it)."""
    live: dict[int, tuple[int, str]] = {}
    current = peak = 0
    at_peak: list[tuple[int, str]] = []
    for event in trace:
        action = event["action"]
        if action == "alloc":
            live[event["addr"]] = (event["size"], project_site(event.get("frames", [])))
            current += event["size"]
            if current > peak:
                peak, at_peak = current, list(live.values())
        elif action == "free_completed" and event["addr"] in live:
            current -= live.pop(event["addr"])[0]
    return peak, at_peak


def by_site(blocks: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """(bytes, blocks, site) per site, largest first."""
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for size, site in blocks:
        sums[site][0] += size
        sums[site][1] += 1
    return sorted(((b, n, site) for site, (b, n) in sums.items()), key=lambda t: (-t[0], t[2]))


def cuda_peak(row, backend: str) -> tuple[float, list[tuple[int, str]], float, float]:
    """(replayed peak MB, blocks alive at it, max_memory_allocated's MB, requested MB) of one call on CUDA,
    measured as the benchmark measures it (rnnlab.bench.measure.peak_memory_mb) with the allocator's
    history on. "Requested" is the peak of the bytes the tensors asked for (the allocator's
    requested_bytes statistic), before its rounding into blocks: if it is well below max_memory_allocated,
    the difference is the allocator's, not an allocation of ours."""
    layer, x, grad_out = make_case(row, "cuda")
    _, forward_backward = steps_for(layer, backend, x, grad_out)
    forward_backward(), forward_backward()
    record, snapshots, requested = torch.cuda.memory._record_memory_history, [], []

    def recorded():
        # a fresh history for each call (a previous row's would otherwise be replayed with it)
        record(enabled="all", context="alloc", stacks="python", clear_history=True)
        try:
            base = torch.cuda.memory_stats().get("requested_bytes.all.current", 0)
            forward_backward()
            torch.cuda.synchronize()
            requested.append(torch.cuda.memory_stats().get("requested_bytes.all.peak", 0) - base)
            snapshots.append(torch.cuda.memory._snapshot())
        finally:
            record(enabled=None)

    measured = peak_memory_mb(recorded)
    trace = snapshots[0]["device_traces"][torch.cuda.current_device()]
    peak, blocks = live_at_peak(trace)
    return peak / MB, blocks, measured, requested[0] / MB


def cpu_peak(row, backend: str) -> tuple[float, list[tuple[int, str]]]:
    mode = modeled_peak(row, sites=True, backend=backend)
    return mode.peak / MB, [(size, f"{site} ({op})") for size, op, site in mode.at_peak.values()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=parse_row, nargs="+", required=True, metavar="cell,B,T,I,H,dtype")
    parser.add_argument("--backends", nargs="+", default=["triton"], choices=["triton", "cudnn"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here (--device cpu gives the CPU model)")
    for row in args.rows:
        for backend in args.backends:
            if args.device == "cuda":
                peak, blocks, measured, requested = cuda_peak(row, backend)
                title = (
                    f"replayed peak {peak:.1f} MB, max_memory_allocated {measured:.1f} MB, "
                    f"requested {requested:.1f} MB"
                )
            else:
                if backend == "cudnn":
                    print(f"\n{row} cudnn: no CPU model of cuDNN's memory (its CPU path is oneDNN)")
                    continue
                peak, blocks = cpu_peak(row, backend)
                title = f"CPU model's peak {peak:.1f} MB"
            print(f"\n{row} {backend} on {args.device}: {title}\n")
            print("| MB | blocks | allocated at |\n|---|---|---|")
            for size, count, site in by_site(blocks):
                print(f"| {size / MB:.1f} | {count} | {site} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
