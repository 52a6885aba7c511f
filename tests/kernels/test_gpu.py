"""Checks that need the real compiler and a CUDA device (skipped without one): the hidden sizes the
benchmarks use, the on-chip and the tiled paths at full size, fp16/bf16/fp32, several batch tiles.

Run on the GPU machine with: python -m pytest tests/kernels -m gpu -q"""

import pytest
import torch
from kernel_cases import Case, check

pytestmark = pytest.mark.gpu

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize("dtype", list(DTYPES), ids=str)
@pytest.mark.parametrize("hidden", [64, 128, 768, 2048], ids=lambda h: f"H{h}")
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_large_hidden_matches_reference(cell, hidden, dtype):
    check(Case(cell, 5, 24, hidden, DTYPES[dtype], lengths=True, reverse=True), device="cuda")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_many_batch_tiles_and_odd_hidden(cell):
    check(Case(cell, 37, 33, 200, torch.float16, lengths=True, reverse=False), device="cuda")


def _compiled_count(kernel) -> int:
    try:
        return len(kernel.device_caches[torch.cuda.current_device()][0])
    except (AttributeError, KeyError, IndexError, TypeError):
        pytest.skip("this Triton keeps its compiled kernels elsewhere")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_new_sequence_length_reuses_the_compiled_kernel(cell):
    """T is do_not_specialize: a second sequence length must not compile the forward kernel again."""
    from rnnlab.kernels import gru, lstm, rnn

    kernel = {"lstm": lstm._lstm_fwd_kernel, "gru": gru._gru_fwd_kernel, "rnn": rnn._rnn_fwd_kernel}[cell]
    check(Case(cell, 3, 9, 48, torch.bfloat16), device="cuda")
    before = _compiled_count(kernel)
    check(Case(cell, 3, 17, 48, torch.bfloat16), device="cuda")
    assert _compiled_count(kernel) == before
