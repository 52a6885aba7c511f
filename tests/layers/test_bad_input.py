"""Bad input fails early with a message naming the argument and what was expected; T = 0 and NaN behave
as documented."""

import pytest
import torch

import rnnlab


@pytest.fixture
def lstm():
    return rnnlab.LSTM(3, 4, num_layers=2, backend="reference")


def test_wrong_rank(lstm):
    with pytest.raises(ValueError, match=r"input must be 3-D \(T, B, input_size\).*got 4-D"):
        lstm(torch.randn(2, 2, 2, 3))
    with pytest.raises(ValueError, match=r"got 1-D"):
        lstm(torch.randn(3))


def test_wrong_feature_size(lstm):
    with pytest.raises(ValueError, match=r"feature size 5 .* input_size is 3"):
        lstm(torch.randn(2, 2, 5))


def test_not_a_tensor(lstm):
    with pytest.raises(TypeError, match="input must be a torch.Tensor or a PackedSequence"):
        lstm([[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("bad", ["h0", "c0"])
def test_initial_state_of_wrong_shape(lstm, bad):
    h0, c0 = torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)
    shapes = {"h0": h0, "c0": c0}
    shapes[bad] = torch.zeros(1, 5, 4)
    with pytest.raises(ValueError, match=rf"{bad} must have shape .* = \(2, 5, 4\), got \(1, 5, 4\)"):
        lstm(torch.randn(6, 5, 3), (shapes["h0"], shapes["c0"]))


def test_lstm_needs_a_tuple_and_gru_a_tensor():
    with pytest.raises(TypeError, match=r"tuple \(h0, c0\)"):
        rnnlab.LSTM(3, 4)(torch.randn(2, 1, 3), torch.zeros(1, 1, 4))
    with pytest.raises(TypeError, match="must be a tensor h0"):
        rnnlab.GRU(3, 4)(torch.randn(2, 1, 3), (torch.zeros(1, 1, 4),))


def test_input_and_weights_of_different_dtypes(lstm):
    with pytest.raises(TypeError, match=r"input has dtype torch.float64, the layer's weights torch.float32"):
        lstm(torch.randn(2, 1, 3, dtype=torch.float64))


def test_state_of_different_dtype(lstm):
    h0 = torch.zeros(2, 1, 4, dtype=torch.float64)
    with pytest.raises(TypeError, match="h0 has dtype torch.float64, the input torch.float32"):
        lstm(torch.randn(2, 1, 3), (h0, h0.float()))


def test_input_and_weights_on_different_devices(lstm):
    x = torch.randn(2, 1, 3, device="meta")
    with pytest.raises(ValueError, match=r"input is on meta, the layer's weights on cpu"):
        lstm(x)


@pytest.mark.parametrize(
    "lengths,message",
    [
        (torch.tensor([3, 2]), r"lengths must have shape \(B,\) = \(3,\)"),
        (torch.tensor([[3, 2, 1]]), r"lengths must have shape \(B,\) = \(3,\)"),
        (torch.tensor([3, 0, 1]), r"lengths must lie in \[1, T\] = \[1, 4\]; got values from 0 to 3"),
        (torch.tensor([5, 2, 1]), r"lengths must lie in \[1, T\] = \[1, 4\]; got values from 1 to 5"),
        (torch.tensor([3.0, 2.0, 1.0]), "lengths must hold integers"),
    ],
    ids=["too-few", "2-D", "zero", "beyond-T", "float"],
)
def test_bad_lengths(lstm, lengths, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lstm(torch.randn(4, 3, 3), lengths=lengths)


def test_lengths_as_a_list_are_accepted(lstm):
    out, _ = lstm(torch.randn(4, 3, 3), lengths=[4, 2, 1])
    assert torch.all(out[2:, 1] == 0) and torch.all(out[1:, 2] == 0)


def test_lengths_with_a_packed_sequence_is_refused(lstm):
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(4, 2, 3), [4, 2])
    with pytest.raises(ValueError, match="lengths must be None when input is a PackedSequence"):
        lstm(packed, lengths=torch.tensor([4, 2]))


def test_empty_batch(lstm):
    with pytest.raises(ValueError, match=r"empty batch \(B=0\)"):
        lstm(torch.randn(4, 0, 3))


@pytest.mark.parametrize("backend", ["reference", "cudnn"])
@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_zero_steps_return_empty_output_and_the_initial_state(cls, backend):
    layer = cls(3, 4, num_layers=2, bidirectional=True, backend=backend)
    h0 = torch.randn(4, 2, 4)
    hx = (h0, torch.randn_like(h0)) if cls is rnnlab.LSTM else h0
    out, state = layer(torch.randn(0, 2, 3), hx)
    assert out.shape == (0, 2, 8)
    states = state if isinstance(state, tuple) else (state,)
    initial = hx if isinstance(hx, tuple) else (hx,)
    for s, s0 in zip(states, initial, strict=True):
        assert torch.equal(s, s0)
    out, state = layer(torch.randn(0, 2, 3))
    assert out.shape == (0, 2, 8)
    if cls is rnnlab.LSTM:  # zeros, as two tensors: h_n and c_n must not alias
        h_n, c_n = state
        assert not h_n.any() and not c_n.any() and h_n.data_ptr() != c_n.data_ptr()
    x = torch.randn(0, 2, 3, requires_grad=True)  # an empty batch still backpropagates
    out, _ = layer(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize("cls", [rnnlab.LSTM, rnnlab.GRU, rnnlab.RNN])
def test_nan_and_inf_propagate(cls):
    layer = cls(3, 4, backend="reference")
    x = torch.randn(5, 2, 3)
    x[1, 0, 0] = float("nan")
    out, _ = layer(x)
    assert torch.isnan(out[1:, 0]).all(), "NaN must flow forward through the state, not be clamped"
    assert not torch.isnan(out[:, 1]).any() and not torch.isnan(out[0]).any()
    out.sum().backward()
    assert torch.isnan(layer.weight_hh_l0.grad).any(), "and backward through the gradients"
    # inf saturates the gates as the math says; whatever torch.nn makes of inf and NaN, so do we
    x[3, 1, 2] = float("inf")
    x[2, 1, 1] = -float("inf")
    out = layer(x)[0]
    layer.backend = "cudnn"
    expected = layer(x)[0]
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    assert torch.allclose(out.nan_to_num(), expected.nan_to_num(), atol=1e-6)


def test_bad_nonlinearity_and_proj_size():
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        rnnlab.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="proj_size is not supported"):
        rnnlab.LSTM(3, 4, proj_size=2)


def test_cells_check_their_input():
    cell = rnnlab.GRUCell(3, 4)
    with pytest.raises(ValueError, match="feature size 5"):
        cell(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"hx \(h\) must have shape \(2, 4\)"):
        cell(torch.randn(2, 3), torch.randn(3, 4))
    with pytest.raises(ValueError, match="empty batch"):
        cell(torch.randn(0, 3))


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_check_dtype_device_and_type_of_their_arguments(name):
    """As the layers: a dtype or device mismatch, or a state that is no tensor, names the argument."""
    cell, x = getattr(rnnlab, name)(3, 4), torch.randn(2, 3)

    def hx(h):
        return (h, torch.randn(2, 4)) if name == "LSTMCell" else h

    with pytest.raises(TypeError, match=r"input has dtype torch.float64, the cell's weights torch.float32"):
        cell(x.double())
    with pytest.raises(TypeError, match=r"hx \(h\) has dtype torch.float64, the input torch.float32"):
        cell(x, hx(torch.randn(2, 4, dtype=torch.float64)))
    with pytest.raises(ValueError, match=r"hx \(h\) is on meta, the input on cpu"):
        cell(x, hx(torch.randn(2, 4, device="meta")))
    with pytest.raises(TypeError, match=r"hx \(h\) must be a torch.Tensor, got float"):
        cell(x, hx(1.0))
    if name == "LSTMCell":
        with pytest.raises(TypeError, match=r"tuple \(h, c\), got Tensor"):
            cell(x, torch.randn(2, 4))
