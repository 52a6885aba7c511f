"""RNNLAB_BIDIR_STREAMS=1: a bidirectional triton layer runs its reverse direction on a side CUDA stream
(rnnlab.streams). The same kernels on the same inputs: outputs, states and every gradient must equal the
one-stream run's exactly. Without CUDA the switch must change nothing."""

import pytest
import torch
from helpers import flatten_states

import rnnlab
from rnnlab import backends, streams

pytestmark = pytest.mark.skipif(not backends.triton_available(), reason="triton cannot run here")

CELLS = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn": rnnlab.RNN}


def _run(layer, x, hx, lengths):
    layer.zero_grad()
    inp = x.clone().requires_grad_()
    states = [s.clone().requires_grad_() for s in flatten_states(hx)]
    out, state = layer(inp, tuple(states) if len(states) == 2 else states[0], lengths=lengths)
    weights = torch.linspace(-1, 1, out.numel(), device=out.device).reshape(out.shape)
    ((out * weights).sum() + sum(s.square().sum() for s in flatten_states(state))).backward()
    grads = [inp.grad, *(s.grad for s in states), *(p.grad for p in layer.parameters())]
    return [out.detach(), *(s.detach() for s in flatten_states(state)), *grads]


def _case(cell, device, dtype, hidden=32):
    torch.manual_seed(0)
    layer = CELLS[cell](16, hidden, num_layers=2, bidirectional=True, batch_first=True).to(device, dtype)
    layer.backend = "triton"
    x = torch.randn(5, 37, 16, device=device, dtype=dtype)
    h0 = torch.randn(4, 5, hidden, device=device, dtype=dtype)
    hx = (h0, torch.randn_like(h0)) if cell == "lstm" else h0
    lengths = torch.tensor([37, 3, 20, 1, 36])
    return layer, x, hx, lengths


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_two_streams_give_the_one_stream_results_exactly(monkeypatch, cell, dtype):
    layer, x, hx, lengths = _case(cell, "cuda", dtype)
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "0")
    monkeypatch.setenv(
        "RNNLAB_BIDIR_LAUNCH", "separate"
    )  # one stream, each direction its own call, as on two
    want = _run(layer, x, hx, lengths)
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "1")
    for _ in range(3):  # again and again: a missing wait between the streams would show as a race
        got = _run(layer, x, hx, lengths)
        torch.cuda.synchronize()
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.parametrize("cell", list(CELLS))
def test_two_streams_on_the_split_path(monkeypatch, cell):
    """H = 1200 is split across programs that meet at a grid barrier every step: with the switch on, each
    direction's plan fills at most half the SMs (kernels.launch.sms_for_a_plan) so that both grids are
    resident at once. Before that, two grids of every SM on two streams could wait on each other forever.
    The plans differ from the one-stream run's (fewer, wider column tiles), so the results agree within
    the dtype's tolerance, and the two-stream runs agree with each other exactly."""
    layer, x, hx, lengths = _case(cell, "cuda", torch.bfloat16, hidden=1200)
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "0")
    want = _run(layer, x, hx, lengths)
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "1")
    first = _run(layer, x, hx, lengths)
    for _ in range(2):
        again = _run(layer, x, hx, lengths)
        torch.cuda.synchronize()
        for a, b in zip(again, first, strict=True):
            assert torch.equal(a, b)
    for a, b in zip(first, want, strict=True):
        scale = max(1.0, b.abs().max().item())
        torch.testing.assert_close(a.float(), b.float(), rtol=3e-2, atol=3e-2 * scale)


def test_the_switch_changes_nothing_without_cuda(monkeypatch):
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "1")
    assert not streams.enabled(torch.device("cpu"))
    layer, x, hx, lengths = _case("gru", "cpu", torch.float32)
    got = _run(layer, x[:, :4], hx, lengths.clamp(max=4))
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "0")
    want = _run(layer, x[:, :4], hx, lengths.clamp(max=4))
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
