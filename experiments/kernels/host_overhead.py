"""Host time of one call of the triton backend: the Python and dispatch work around the kernels, which the
GPU waits for when a call's kernels are short (small T, one decoding step at a time) and which
`triton.testing.do_bench` counts in each repetition it times.

    python experiments/kernels/host_overhead.py            # ~1 minute on 2 cores
    python experiments/kernels/host_overhead.py --bidirectional

A tiny layer (B=1, T=1, I=H=16, fp32) runs the benchmark's forward and forward+backward (rnnlab.bench.measure)
on CPU tensors with every Triton launch replaced by a no-op (memory_model.kernel_launches_stubbed), so what
is timed is everything but the kernels. Not timed: Triton's own launch (its argument binding and cache
lookup, the same for any caller) and the GPU's launch latency. Three ways, side by side:
- triton: as the layers call the kernels (eager calls skip torch.library: common.eager_autograd);
- triton, custom ops: the same calls through the registered torch.library ops, the path torch.compile
  traces (and, before common.eager_autograd, every call);
- triton, GEMMs as on CUDA (in TF32): the GEMMs outside the kernels on the paths fp32 takes on CUDA, plain
  (F.linear) and under cuDNN's TF32 switch (kernels/projection.py), which the CPU otherwise never takes;
- torch.nn: backend "cudnn" (on the CPU oneDNN, on these tiny tensors: about its host time).
The fastest of 9 runs of 200 calls each (noise only adds time), one thread. On this shared 2-core machine
runs in a row differ by up to ~40%: compare columns of one run, not runs.

A second table counts the torch ops one forward+backward dispatches (TorchDispatchMode, launches stubbed,
B=2, T=3), and those of them that would launch work on a GPU (everything but views and bare allocations):
exact and repeatable, unlike the times. torch.nn's column is its CPU path (oneDNN), shown for scale; on a
GPU its cuDNN calls launch several kernels each.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")  # the triton backend must be selectable without a GPU
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from memory_model import kernel_launches_stubbed  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from rnnlab.bench.grid import Row  # noqa: E402
from rnnlab.bench.measure import make_case, steps_for  # noqa: E402

CALLS, RUNS = 200, 9


def microseconds_per_call(fn) -> float:
    for _ in range(20):
        fn()
    runs = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(CALLS):
            fn()
        runs.append((time.perf_counter() - start) / CALLS * 1e6)
    return min(runs)


@contextlib.contextmanager
def through_custom_ops(cell: str):
    """Inside the block the cell's forward and backward go through its torch.library custom ops."""
    from rnnlab.kernels import common, gru, lstm, rnn

    module = {"lstm": lstm, "gru": gru, "rnn": rnn}[cell]
    entry, op_or_impl = getattr(module, f"_{cell}_forward"), common.op_or_impl
    op = getattr(module, f"_{cell}_fwd")

    def forward(*args):
        # LSTM/GRU's last argument is overwrite_gx, which the traced path never sets: the registered op
        # declares no mutation, and torch.library refuses an output that is one of its inputs
        return op(*args[:-1], False) if cell in ("lstm", "gru") else op(*args)

    setattr(module, f"_{cell}_forward", forward)
    common.op_or_impl = lambda op, impl, tensor: op
    try:
        yield
    finally:
        setattr(module, f"_{cell}_forward", entry)
        common.op_or_impl = op_or_impl


@contextlib.contextmanager
def gemms_as_on_cuda(tf32: bool):
    """Inside the block the GEMMs outside the kernels take the path fp32 takes on CUDA: F.linear and
    autograd's own backward (oneDNN, which the CPU path uses for them, off), or with ``tf32`` the path
    under cuDNN's TF32 switch (kernels/projection.py: an autograd Function and cuBLAS's setting switched
    around the GEMMs; on these CPU tensors the setting changes no result)."""
    from rnnlab.kernels import projection

    follows = projection.follows_cudnn_tf32
    projection.follows_cudnn_tf32 = lambda tensor: tf32
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the flags context's note on oneDNN's TF32 for Intel GPUs
            with torch.backends.mkldnn.flags(enabled=False):
                yield
    finally:
        projection.follows_cudnn_tf32 = follows


ALLOCATIONS = {"empty", "empty_strided", "new_empty", "new_empty_strided"}


class _OpLog(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func)
        return func(*args, **(kwargs or {}))


def ops_per_call(fn) -> tuple[int, int]:
    """(torch ops dispatched, those that launch GPU work) by one call of ``fn``, after two warm-up calls."""
    fn(), fn()
    with _OpLog() as log:
        fn()
    launching = [f for f in log.ops if not f.is_view and f.overloadpacket.__name__ not in ALLOCATIONS]
    return len(log.ops), len(launching)


def op_table(cells: list[str], directions: int = 1) -> None:
    layers = " of bidirectional layers" if directions == 2 else ""
    print(f"\ntorch ops per forward+backward{layers} (all / launching GPU work), B=2 T=3 I=H=16\n")
    print("| cell | dtype | triton | torch.nn (CPU path) |")
    print("|---|---|---|---|")
    for cell in cells:
        for dtype in ("fp32", "bf16"):
            layer, x, grad_out = make_case(Row(cell, 2, 3, 16, 16, dtype, directions=directions), "cpu")
            counts = []
            for backend in ("triton", "cudnn"):
                _, forward_backward = steps_for(layer, backend, x, grad_out)
                with kernel_launches_stubbed():
                    counts.append("{} / {}".format(*ops_per_call(forward_backward)))
            print(f"| {cell.upper()} | {dtype} | " + " | ".join(counts) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"], choices=["lstm", "gru", "rnn"])
    parser.add_argument("--bidirectional", action="store_true", help="bidirectional layers")
    args = parser.parse_args(argv)
    directions = 2 if args.bidirectional else 1
    torch.set_num_threads(1)
    print("µs per call (fwd / fwd+bwd)\n")
    print(
        "| cell | triton | triton, custom ops | triton, GEMMs as on CUDA | triton, GEMMs as on CUDA in TF32 |"
        " torch.nn |"
    )
    print("|---|---|---|---|---|---|")
    for cell in args.cells:
        layer, x, grad_out = make_case(Row(cell, 1, 1, 16, 16, "fp32", directions=directions), "cpu")
        ways = {
            "triton": ("triton", contextlib.nullcontext()),
            "custom ops": ("triton", through_custom_ops(cell)),
            "GEMMs as on CUDA": ("triton", gemms_as_on_cuda(tf32=False)),
            "GEMMs as on CUDA in TF32": ("triton", gemms_as_on_cuda(tf32=True)),
            "torch.nn": ("cudnn", contextlib.nullcontext()),
        }
        cells = []
        for backend, context in ways.values():
            forward, forward_backward = steps_for(layer, backend, x, grad_out)
            with kernel_launches_stubbed(), context:
                times = microseconds_per_call(forward), microseconds_per_call(forward_backward)
            cells.append("{:.0f} / {:.0f}".format(*times))
        print(f"| {cell.upper()} | " + " | ".join(cells) + " |")
    op_table(args.cells, directions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
