"""Comparisons shared by the test suite."""

import torch


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|, computed in float64."""
    actual, expected = actual.detach().double(), expected.detach().double()
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = expected.abs().max().clamp_min(1e-12)
    return float((actual - expected).abs().max() / scale) if expected.numel() else 0.0


def assert_relative_close(actual, expected, rel: float, what: str = "") -> None:
    err = relative_error(actual, expected)
    assert err <= rel, f"{what}: relative error {err:.3e} > {rel:.0e}"


def flatten_states(state):
    """h_n, or (h_n, c_n), as a tuple."""
    return tuple(state) if isinstance(state, tuple) else (state,)
