"""Where the host time of one benchmark call goes, on the machine that runs it (CUDA kernels real, not
stubbed as in host_overhead.py): the wall time per call issued back to back without waiting for the GPU
(what do_bench sees when the host is the bottleneck), the same with a synchronize after each call, and a
cProfile of the back-to-back calls, by own time.

    python experiments/kernels/host_profile.py --row lstm,32,100,64,128,bf16 --backends triton cudnn
    python experiments/kernels/host_profile.py --row lstm,32,100,64,128,bf16 --compile reduce-overhead

``--compile MODE`` runs the layer through ``torch.compile(layer, mode=MODE)`` instead ("default" for no
mode; ``--compile-backend`` picks the compiler, inductor unless told): with "reduce-overhead" the compiled
forward and backward replay as CUDA graphs, which takes the per-call host work off the GPU's path, the
standard remedy where the host is the bottleneck. Both backends are timed side by side either way.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from knob_ab import parse_row  # noqa: E402

from rnnlab.bench.measure import make_case, steps_for, sync  # noqa: E402


def compiled_steps(layer, backend: str, x, grad_out, mode: str, compiler: str):
    """(forward, forward+backward) as rnnlab.bench.measure.steps_for defines them, through torch.compile."""
    compiled = torch.compile(layer, mode=None if mode == "default" else mode, backend=compiler)
    return steps_for(layer, backend, x, grad_out, module=compiled)


def per_call_ms(fn, calls: int, device: str, wait_each: bool) -> float:
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
        if wait_each:
            sync(device)
    sync(device)
    return (time.perf_counter() - start) / calls * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--row", type=parse_row, required=True, metavar="cell,B,T,I,H,dtype")
    parser.add_argument("--backends", nargs="+", default=["triton", "cudnn"], choices=["triton", "cudnn"])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", metavar="MODE", help="torch.compile mode ('default' for none)")
    parser.add_argument("--compile-backend", default="inductor", metavar="COMPILER")
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error(f"--calls must be >= 1, got {args.calls}")
    layer, x, grad_out = make_case(args.row, args.device)
    for backend in args.backends:
        if args.compile:
            steps = compiled_steps(layer, backend, x, grad_out, args.compile, args.compile_backend)
        else:
            steps = steps_for(layer, backend, x, grad_out)
        way = f" (torch.compile {args.compile}, {args.compile_backend})" if args.compile else ""
        for name, fn in zip(("fwd", "fwd+bwd"), steps, strict=True):
            for _ in range(5):
                fn()
            free = per_call_ms(fn, args.calls, args.device, wait_each=False)
            waited = per_call_ms(fn, args.calls, args.device, wait_each=True)
            label = f"{args.row.label} {backend}{way} {name}"
            print(f"{label}: {free:.3f} ms a call back to back, {waited:.3f} ms waited")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.calls):
                fn()
            sync(args.device)
            profiler.disable()
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(args.top)
            print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
