"""Kernel tests run under Triton's interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1 before
collection when there is no GPU). Every output and scratch buffer the kernels fill is allocated NaN-filled
here, so an element a kernel forgets to write fails the comparison."""

import pytest
from rnnlab.kernels import common


@pytest.fixture(autouse=True)
def _poison_outputs(monkeypatch):
    monkeypatch.setattr(common, "POISON", True)
