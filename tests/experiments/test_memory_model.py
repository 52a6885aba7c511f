"""experiments/kernels/memory_model.py: the CPU count of the triton backend's peak memory."""

from __future__ import annotations

from kernel_scripts import load
from triton.runtime import interpreter, jit

from rnnlab.bench.grid import Row


def test_counts_at_least_what_the_forward_must_hold_and_restores_kernel_launches():
    model = load("memory_model")
    launchers = (jit.JITFunction.__getitem__, interpreter.InterpretedFunction.__getitem__)
    steps, batch, hidden = 5, 3, 20
    peak = model.modeled_peak_mb(Row("lstm", batch, steps, 8, hidden, "fp32")) * 2**20

    def granules(elements):  # fp32 bytes rounded up to the allocator's 512-byte granule
        return -(-elements * 4 // 512) * 512

    # while the kernel runs: gx with the saved gates written over it (T, B, 4H), out and the cell states
    # (T, B, H)
    must_hold = granules(steps * batch * 4 * hidden) + 2 * granules(steps * batch * hidden)
    assert must_hold <= peak <= 3 * must_hold, (peak, must_hold)
    assert (jit.JITFunction.__getitem__, interpreter.InterpretedFunction.__getitem__) == launchers
