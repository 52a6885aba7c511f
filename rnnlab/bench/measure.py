"""Timing one row: every backend on the same layer (same weights, same input), side by side.

- forward: the layer's forward under ``torch.no_grad()`` (inference).
- forward+backward: forward with gradients on, then ``torch.autograd.grad`` of a fixed random output
  gradient with respect to the input and every parameter (a training step without the optimizer).

On the CPU the backends are interleaved repetition by repetition (a burst of load on this shared machine
hits all of them alike) and the median is reported. On CUDA each is timed by ``triton.testing.do_bench``
(median), and the peak memory of one forward+backward is recorded, with the device time of its kernels
(torch.profiler): a forward+backward whose median is well above its device time is bound by the host.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch

import rnnlab

from .baselines import plain_loop
from .grid import DTYPES, Row

CLASSES = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}


def make_case(row: Row, device: str):
    torch.manual_seed(0)
    dtype = DTYPES[row.dtype]
    layer = CLASSES[row.cell](row.input_size, row.hidden, bidirectional=row.directions == 2)
    layer = layer.to(device=device, dtype=dtype)
    x = torch.randn(row.steps, row.batch, row.input_size, device=device, dtype=dtype)
    grad_out = torch.randn(row.steps, row.batch, row.directions * row.hidden, device=device, dtype=dtype)
    return layer, x, grad_out


def _runner(layer, backend: str, module: Callable | None = None):
    if backend == "loop":
        return lambda x: plain_loop(layer, x)
    module = layer if module is None else module

    def run(x):
        layer.backend = backend
        return module(x)[0]

    return run


def steps_for(layer, backend: str, x, grad_out, module: Callable | None = None) -> tuple[Callable, Callable]:
    """(forward, forward+backward) closures for one backend; ``module``: what to call in the layer's place
    (the layer compiled, say), with the layer's backend set to ``backend``."""
    run = _runner(layer, backend, module)
    params = list(layer.parameters())

    def forward():
        with torch.no_grad():
            return run(x)

    def forward_backward():
        inp = x.detach().requires_grad_()
        out = run(inp)
        return torch.autograd.grad(out, [inp, *params], grad_out)

    return forward, forward_backward


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_cpu(fns: dict[str, Callable], warmup: int, reps: int) -> dict[str, float]:
    """Median ms of each callable, interleaved. A callable that raises is reported by the caller."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate who goes first
        for name in order:
            start = time.perf_counter()
            fns[name]()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in samples.items()}


def time_cuda(fn: Callable) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|, in float64 (NaN anywhere gives NaN; empty gives 0). The
    benchmark's check of each backend's output against cudnn's, and the test suite's comparison."""
    if actual.shape != expected.shape:
        raise ValueError(f"shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    actual, expected = actual.detach().double(), expected.detach().double()
    scale = expected.abs().max().clamp_min(1e-12)
    return float((actual - expected).abs().max() / scale) if expected.numel() else 0.0


def kernel_device_times(fn: Callable) -> list[tuple[str, float]]:
    """(kernel name, device ms) of everything one call of ``fn`` runs on the GPU (torch.profiler, CUDA
    activity: kernels, copies, fills), summed per name, largest first. Called once first, so compilation
    and caching allocations are not in it."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    totals = [(e.key, e.device_time_total / 1e3) for e in prof.key_averages() if e.device_time_total > 0]
    return sorted(totals, key=lambda kv: -kv[1])


def device_ms(fn: Callable) -> float:
    """The GPU's busy time for one call of ``fn`` (the sum of ``kernel_device_times``), or NaN where the
    profiler cannot run (no CUPTI)."""
    try:
        return sum(ms for _, ms in kernel_device_times(fn))
    except Exception:  # noqa: BLE001 - a missing profiler leaves the column empty, not the row
        return math.nan


def peak_memory_mb(fn: Callable) -> float:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20
