"""torch.autograd.gradcheck in float64 of every hand-written BPTT backward: gradients to the input gates,
the recurrent weight (and GRU's hidden bias), and the initial states, with and without lengths, both
directions."""

import pytest
import torch

from rnnlab.reference import gru_recurrence, lstm_recurrence, rnn_recurrence

STEPS, BATCH, HIDDEN = 5, 3, 4
LENGTHS = {"full": None, "ragged": torch.tensor([5, 2, 1])}


def _leaf(*shape):
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def _case_ids(lengths, reverse):
    return f"{lengths}-{'reverse' if reverse else 'forward'}"


CASES = [(n, r) for n in LENGTHS for r in (False, True)]
IDS = [_case_ids(n, r) for n, r in CASES]


@pytest.mark.parametrize("lengths,reverse", CASES, ids=IDS)
def test_lstm_gradcheck(lengths, reverse):
    args = (
        _leaf(STEPS, BATCH, 4 * HIDDEN),
        _leaf(4 * HIDDEN, HIDDEN),
        _leaf(BATCH, HIDDEN),
        _leaf(BATCH, HIDDEN),
    )
    assert torch.autograd.gradcheck(
        lambda gx, w, h0, c0: lstm_recurrence(gx, w, h0, c0, LENGTHS[lengths], reverse), args
    )


@pytest.mark.parametrize("with_bias", [True, False], ids=["b_hh", "no-bias"])
@pytest.mark.parametrize("lengths,reverse", CASES, ids=IDS)
def test_gru_gradcheck(lengths, reverse, with_bias):
    gx, w, h0 = _leaf(STEPS, BATCH, 3 * HIDDEN), _leaf(3 * HIDDEN, HIDDEN), _leaf(BATCH, HIDDEN)
    if with_bias:
        args = (gx, w, _leaf(3 * HIDDEN), h0)
        fn = lambda gx, w, b, h0: gru_recurrence(gx, w, b, h0, LENGTHS[lengths], reverse)  # noqa: E731
    else:
        args = (gx, w, h0)
        fn = lambda gx, w, h0: gru_recurrence(gx, w, None, h0, LENGTHS[lengths], reverse)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "sigmoid"])
@pytest.mark.parametrize("lengths,reverse", CASES, ids=IDS)
def test_rnn_gradcheck(lengths, reverse, nonlinearity):
    args = (_leaf(STEPS, BATCH, HIDDEN), _leaf(HIDDEN, HIDDEN), _leaf(BATCH, HIDDEN))
    assert torch.autograd.gradcheck(
        lambda gx, w, h0: rnn_recurrence(gx, w, h0, LENGTHS[lengths], reverse, nonlinearity), args
    )


def test_gradient_through_final_states_only():
    """Loss on the final states alone (no output gradient): the backward pass must start from them."""
    lstm_args = (
        _leaf(STEPS, BATCH, 4 * HIDDEN),
        _leaf(4 * HIDDEN, HIDDEN),
        _leaf(BATCH, HIDDEN),
        _leaf(BATCH, HIDDEN),
    )
    assert torch.autograd.gradcheck(lambda *a: lstm_recurrence(*a)[1:], lstm_args)
    gru_args = (_leaf(STEPS, BATCH, 3 * HIDDEN), _leaf(3 * HIDDEN, HIDDEN), _leaf(BATCH, HIDDEN))
    assert torch.autograd.gradcheck(lambda gx, w, h0: gru_recurrence(gx, w, None, h0)[1], gru_args)
