"""experiments/kernels/host_overhead.py: host time per call of the triton backend, launches stubbed."""

from __future__ import annotations

import re

import pytest
from kernel_scripts import load


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_prints_five_timed_ways_and_restores_what_it_switched(cell, monkeypatch, capsys):
    """Every cell, as the layers call it: LSTM and GRU with the gates written over gx on the eager path,
    not through the custom ops (which refuse an output that is an input); the GEMMs' two CUDA paths; and
    torch.nn. Afterwards the eager path, the projection's switch and oneDNN are as they were."""
    import torch

    script = load("host_overhead")
    from rnnlab.kernels import common, gru, lstm, projection, rnn

    module = {"lstm": lstm, "gru": gru, "rnn": rnn}[cell]
    entry, op_or_impl = getattr(module, f"_{cell}_forward"), common.op_or_impl
    follows, onednn = projection.follows_cudnn_tf32, torch.backends.mkldnn.enabled
    monkeypatch.setattr(script, "CALLS", 3)
    monkeypatch.setattr(script, "RUNS", 1)
    assert script.main(["--cells", cell]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    name = f"| {cell.upper()} |"
    timed = [line for line in lines if line.startswith(name) and "fp32" not in line and "bf16" not in line]
    assert len(timed) == 1, lines
    pairs = re.findall(r"(\d+) / (\d+)", timed[0])
    assert len(pairs) == 5, timed
    assert all(int(fwd) > 0 and int(both) > 0 for fwd, both in pairs)
    assert getattr(module, f"_{cell}_forward") is entry and common.op_or_impl is op_or_impl
    assert projection.follows_cudnn_tf32 is follows and torch.backends.mkldnn.enabled == onednn
    counted = {line.split("|")[2].strip(): line for line in lines if line.startswith(f"{name} ")}
    assert {"fp32", "bf16"} <= set(counted), lines
    for line in (counted["fp32"], counted["bf16"]):
        (total, launching), _ = re.findall(r"(\d+) / (\d+)", line)
        assert 0 < int(launching) < int(total), line


def test_counts_the_ops_a_call_dispatches():
    """ops_per_call counts every dispatched op once and leaves views and bare allocations out of the
    launching count."""
    import torch

    script = load("host_overhead")
    x = torch.randn(4, 4)

    def call():
        y = torch.empty(4, 4)  # allocation: not launching
        y.copy_(x)  # launching
        return (y.t() + 1).sum()  # t: a view; add and sum: launching

    assert script.ops_per_call(call) == (5, 3)
