"""Variable-length batches: a padded batch with lengths, or a PackedSequence, gives what torch.nn gives for
the packed batch: outputs zero past each length, final states taken at each length, the same gradients."""

import pytest
import torch
from helpers import assert_relative_close, flatten_states
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab

CELLS = {"lstm": (nn.LSTM, rnnlab.LSTM), "gru": (nn.GRU, rnnlab.GRU), "rnn": (nn.RNN, rnnlab.RNN)}


def _pair(cell, **kwargs):
    expected = CELLS[cell][0](4, 6, **kwargs)
    layer = CELLS[cell][1](4, 6, backend="reference", **kwargs)
    layer.load_state_dict(expected.state_dict())
    return expected, layer


@pytest.mark.parametrize("batch_first", [False, True], ids=["tm", "bf"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_padded_batch_with_lengths_matches_packed_torch_nn(cell, bidirectional, batch_first):
    expected_layer, layer = _pair(cell, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    steps, lengths = 7, torch.tensor([3, 7, 1, 5])
    shape = (4, steps, 4) if batch_first else (steps, 4, 4)
    x = torch.randn(shape)
    h0 = torch.randn(2 * (2 if bidirectional else 1), 4, 6)
    hx = (h0, torch.randn_like(h0)) if cell == "lstm" else h0

    x_e = x.clone().requires_grad_()
    packed = pack_padded_sequence(x_e, lengths, batch_first=batch_first, enforce_sorted=False)
    out_packed, state_e = expected_layer(packed, hx)
    out_e, _ = pad_packed_sequence(out_packed, batch_first=batch_first, total_length=steps)
    x_r = x.clone().requires_grad_()
    out, state = layer(x_r, hx, lengths=lengths)

    assert_relative_close(out, out_e, 1e-5, "output")
    time_axis = 1 if batch_first else 0
    for b, n in enumerate(lengths.tolist()):
        row = out.select(0 if batch_first else 1, b)
        assert torch.all(row.narrow(0, n, steps - n) == 0), "output past the length must be exactly zero"
    for s, s_e in zip(flatten_states(state), flatten_states(state_e), strict=True):
        assert_relative_close(s, s_e, 1e-5, "final state")

    weights = torch.randn_like(out)
    (out_e * weights).sum().backward()
    (out * weights).sum().backward()
    assert_relative_close(x_r.grad, x_e.grad, 1e-5, "input gradient")
    past = torch.arange(steps)[:, None] >= lengths[None, :]  # (T, B)
    if batch_first:
        past = past.T
    assert torch.all(x_r.grad[past] == 0), "no gradient reaches padding"
    for (name, p), p_e in zip(layer.named_parameters(), expected_layer.parameters(), strict=True):
        assert_relative_close(p.grad, p_e.grad, 1e-5, f"grad of {name}")
    assert time_axis in (0, 1)


@pytest.mark.parametrize("cell", list(CELLS))
def test_packed_sequence_in_packed_sequence_out(cell):
    expected_layer, layer = _pair(cell, bidirectional=True)
    x = torch.randn(6, 3, 4)
    lengths = torch.tensor([2, 6, 4])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out_e, state_e = expected_layer(packed)
    out, state = layer(packed)
    assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(out.batch_sizes, out_e.batch_sizes)
    assert torch.equal(out.sorted_indices, out_e.sorted_indices)
    assert_relative_close(out.data, out_e.data, 1e-5, "packed data")
    for s, s_e in zip(flatten_states(state), flatten_states(state_e), strict=True):
        assert_relative_close(s, s_e, 1e-5, "final state")


def test_lengths_on_the_cudnn_backend_match_reference():
    layer = rnnlab.GRU(4, 6, bidirectional=True)
    x, lengths = torch.randn(5, 3, 4), torch.tensor([5, 2, 3])
    out_ref, h_ref = layer(x, lengths=lengths)
    layer.backend = "cudnn"
    out, h = layer(x, lengths=lengths)
    assert_relative_close(out, out_ref, 1e-5, "output")
    assert_relative_close(h, h_ref, 1e-5, "h_n")


def test_full_lengths_equal_no_lengths():
    layer = rnnlab.LSTM(4, 6, bidirectional=True)
    x = torch.randn(5, 3, 4)
    out, (h, c) = layer(x)
    out_l, (h_l, c_l) = layer(x, lengths=torch.full((3,), 5))
    assert torch.allclose(out, out_l) and torch.allclose(h, h_l) and torch.allclose(c, c_l)
