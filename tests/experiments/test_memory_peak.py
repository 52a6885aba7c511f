"""experiments/kernels/memory_peak.py: what is alive at the peak of one forward+backward."""

from __future__ import annotations

from kernel_scripts import HERE, load

ROOT = HERE.parents[1]


def frame(path: str, line: int, name: str) -> dict:
    return {"filename": str(ROOT / path), "line": line, "name": name}


def test_replays_an_allocator_trace_to_its_peak():
    script = load("memory_peak")
    fwd = [frame("kernels/lstm.py", 10, "fwd"), frame("rnnlab/bench/measure.py", 5, "forward_backward")]
    bwd = [frame("kernels/lstm.py", 20, "bwd")]
    trace = [
        {"action": "alloc", "addr": 1, "size": 100, "frames": fwd},
        {"action": "alloc", "addr": 2, "size": 50, "frames": fwd},
        {"action": "free_requested", "addr": 1, "size": 100, "frames": []},  # not yet free
        {"action": "alloc", "addr": 3, "size": 30, "frames": bwd},  # the peak: 180
        {"action": "free_completed", "addr": 1, "size": 100, "frames": []},
        {"action": "free_completed", "addr": 99, "size": 7, "frames": []},  # made before the trace: ignored
        {"action": "alloc", "addr": 4, "size": 120, "frames": []},  # 200, a new peak, from C++
        {"action": "free_completed", "addr": 4, "size": 120, "frames": []},
    ]
    peak, blocks = script.live_at_peak(trace)
    assert peak == 200
    sites = dict((site, size) for size, _, site in script.by_site(blocks))
    assert sites == {
        "kernels/lstm.py:10 fwd < rnnlab/bench/measure.py:5 forward_backward": 50,
        "kernels/lstm.py:20 bwd": 30,
        "-": 120,
    }
    assert script.by_site([(5, "a"), (7, "b"), (5, "a")]) == [(10, 2, "a"), (7, 1, "b")]


def test_sites_read_frames_in_either_order():
    script = load("memory_peak")
    innermost_first = [
        frame("kernels/common.py", 97, "new_buffer"),
        frame("kernels/lstm.py", 376, "_lstm_fwd_impl"),
        {"filename": "/usr/lib/python3/site-packages/torch/nn/modules/module.py", "line": 1, "name": "x"},
        frame("rnnlab/bench/measure.py", 65, "forward_backward"),
        frame("experiments/kernels/memory_peak.py", 1, "main"),
    ]
    expected = "kernels/common.py:97 new_buffer < kernels/lstm.py:376 _lstm_fwd_impl"
    assert script.project_site(innermost_first) == expected
    assert script.project_site(innermost_first[::-1]) == expected
    assert script.project_site(innermost_first[2:3]) == "-"


def test_prints_the_cpu_model_at_its_peak(capsys):
    script = load("memory_peak")
    argv = ["--device", "cpu", "--rows", "lstm,3,5,8,20,fp32", "--backends", "triton", "cudnn"]
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    assert "CPU model's peak" in out and "no CPU model of cuDNN" in out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ") and "kernels/" in line]
    assert any("_lstm_fwd_impl" in cells[2] for cells in rows), out
    assert all(float(cells[0].strip("| ")) >= 0 for cells in rows)


def test_cuda_listing_with_the_cuda_calls_stubbed(monkeypatch, capsys):
    """The CUDA path's plumbing, which no CPU run reaches otherwise: the allocator history switched on and
    off around the measured call, the snapshot's trace replayed, and the requested bytes taken from the
    statistics' change over the call. The CUDA calls are stubbed and the layer runs on the CPU."""
    import torch

    script = load("memory_peak")
    calls = []
    base = 5 * 2**20  # alive before the call: not the call's
    stats = {"requested_bytes.all.current": base, "requested_bytes.all.peak": base}

    def record(enabled="all", **kwargs):
        calls.append(("record", enabled, kwargs.get("clear_history")))

    def measured(fn):  # rnnlab.bench.measure.peak_memory_mb: reset the peak, call, report the peak
        calls.append("measure")
        stats["requested_bytes.all.peak"] = stats["requested_bytes.all.current"]
        fn()
        return 2.5

    def synchronize():  # after the measured call: the most it asked for
        stats["requested_bytes.all.peak"] = stats["requested_bytes.all.current"] + 3 * 2**20

    def snapshot():
        site = [frame("kernels/lstm.py", 7, "fwd")]
        trace = [{"action": "alloc", "addr": 1, "size": 2**20, "frames": site}]
        return {"device_traces": [trace]}

    monkeypatch.setattr(script, "make_case", lambda row, device: script_make_case(row))
    monkeypatch.setattr(script, "peak_memory_mb", measured)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", synchronize)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "memory_stats", lambda: dict(stats))
    monkeypatch.setattr(torch.cuda.memory, "_record_memory_history", record)
    monkeypatch.setattr(torch.cuda.memory, "_snapshot", snapshot)
    assert script.main(["--device", "cuda", "--rows", "lstm,2,3,4,8,fp32", "--backends", "cudnn"]) == 0
    assert calls == ["measure", ("record", "all", True), ("record", None, None)]
    out = capsys.readouterr().out
    assert "replayed peak 1.0 MB, max_memory_allocated 2.5 MB, requested 3.0 MB" in out, out
    assert "| 1.0 | 1 | kernels/lstm.py:7 fwd |" in out, out


def script_make_case(row):
    from rnnlab.bench.measure import make_case

    return make_case(row, "cpu")
