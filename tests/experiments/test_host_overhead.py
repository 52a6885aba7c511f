"""experiments/kernels/host_overhead.py: host time per call of the triton backend, launches stubbed."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

HERE = Path(__file__).parents[2] / "experiments" / "kernels"


def load_script():
    sys.path.insert(0, str(HERE))  # it imports memory_model from its folder
    try:
        spec = importlib.util.spec_from_file_location("host_overhead", HERE / "host_overhead.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(HERE))
    return module


def test_prints_three_timed_ways_and_restores_the_eager_path(monkeypatch, capsys):
    script = load_script()
    from rnnlab.kernels import common, rnn

    entry, op_or_impl = rnn._rnn_forward, common.op_or_impl
    monkeypatch.setattr(script, "CALLS", 3)
    monkeypatch.setattr(script, "RUNS", 1)
    assert script.main(["--cells", "rnn"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[-1]
    pairs = re.findall(r"(\d+) / (\d+)", row)
    assert row.startswith("| RNN |") and len(pairs) == 3, row
    assert all(int(fwd) > 0 and int(both) > 0 for fwd, both in pairs)
    assert rnn._rnn_forward is entry and common.op_or_impl is op_or_impl
