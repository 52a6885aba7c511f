"""Comparisons shared by the test suite."""

from rnnlab.bench.measure import relative_error


def assert_relative_close(actual, expected, rel: float, what: str = "") -> None:
    err = relative_error(actual, expected)
    assert err <= rel, f"{what}: relative error {err:.3e} > {rel:.0e}"


def flatten_states(state):
    """h_n, or (h_n, c_n), as a tuple."""
    return tuple(state) if isinstance(state, tuple) else (state,)
