"""Test-wide set-up.

Without a GPU the Triton kernels run under Triton's interpreter. TRITON_INTERPRET is read when a kernel is
decorated, so it must be set before any kernel module is imported: here, before collection starts.

fp32 is compared at fp32 tolerances, so TF32 is off in every test (torch.nn's cuDNN RNNs and the fused kernels
both follow torch.backends.cudnn.allow_tf32; its default, on, is what the benchmark measures). A test of the
TF32 mode turns it back on itself.
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
def _no_tf32():
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from a known seed; tests that want fresh draws reseed themselves."""
    torch.manual_seed(0)
