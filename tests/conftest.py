"""Test-wide set-up.

Without a GPU the Triton kernels run under Triton's interpreter. TRITON_INTERPRET is read when a kernel is
decorated, so it must be set before any kernel module is imported: here, before collection starts.
"""

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from a known seed; tests that want fresh draws reseed themselves."""
    torch.manual_seed(0)
