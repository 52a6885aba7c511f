"""The layers on backend="triton" (Triton's interpreter on the CPU, the compiler on a GPU) give the
reference backend's outputs, states and gradients: multi-layer, bidirectional, lengths, initial states."""

import pytest
import torch
from helpers import assert_relative_close, flatten_states

import rnnlab
from rnnlab import backends

pytestmark = pytest.mark.skipif(not backends.triton_available(), reason="triton cannot run here")

CELLS = {
    "lstm": (rnnlab.LSTM, {}),
    "gru": (rnnlab.GRU, {}),
    "rnn_tanh": (rnnlab.RNN, {"nonlinearity": "tanh"}),
    "rnn_sigmoid": (rnnlab.RNN, {"nonlinearity": "sigmoid"}),
}


@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("cell", list(CELLS))
def test_triton_layer_matches_reference(cell, with_lengths):
    cls, extra = CELLS[cell]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer = cls(4, 5, num_layers=2, bidirectional=True, batch_first=True, **extra).to(device)
    x = torch.randn(3, 6, 4, device=device)
    h0 = torch.randn(4, 3, 5, device=device)
    hx = (h0, torch.randn_like(h0)) if cell == "lstm" else h0
    lengths = torch.tensor([6, 2, 4]) if with_lengths else None
    results = {}
    for backend in ("reference", "triton"):
        layer.backend = backend
        layer.zero_grad()
        inp = x.clone().requires_grad_()
        states = [s.clone().requires_grad_() for s in flatten_states(hx)]
        out, state = layer(inp, tuple(states) if cell == "lstm" else states[0], lengths=lengths)
        torch.manual_seed(3)  # the same output weights for both backends
        weights = torch.randn_like(out)
        ((out * weights).sum() + sum(s.sum() for s in flatten_states(state))).backward()
        grads = [inp.grad, *[s.grad for s in states], *[p.grad.clone() for p in layer.parameters()]]
        results[backend] = (out, flatten_states(state), grads)
    (out_r, state_r, grads_r), (out_t, state_t, grads_t) = results["reference"], results["triton"]
    assert_relative_close(out_t, out_r, 1e-4, "output")
    for s_t, s_r in zip(state_t, state_r, strict=True):
        assert_relative_close(s_t, s_r, 1e-4, "final state")
    for g_t, g_r in zip(grads_t, grads_r, strict=True):
        assert_relative_close(g_t, g_r, 1e-4, "gradient")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_triton_layer_under_autocast(cell):
    """Under torch.autocast (bf16) the triton recurrence runs in bf16, like torch.nn's: outputs and states in
    bf16, gradients reach the fp32 parameters, and the result agrees with the reference backend under the
    same autocast to bf16's precision."""
    cls, extra = CELLS[cell]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer = cls(6, 20, num_layers=2, **extra).to(device)
    x = torch.randn(5, 3, 6, device=device)
    results = {}
    for backend in ("reference", "triton"):
        layer.backend = backend
        layer.zero_grad()
        with torch.autocast(device, dtype=torch.bfloat16):
            out, state = layer(x)
        assert out.dtype == torch.bfloat16 and all(s.dtype == torch.bfloat16 for s in flatten_states(state))
        out.float().square().sum().backward()
        grads = [p.grad for p in layer.parameters()]
        assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
        results[backend] = (out.float(), [g.clone() for g in grads])
    (out_r, grads_r), (out_t, grads_t) = results["reference"], results["triton"]
    assert_relative_close(out_t, out_r, 3e-2, "output")
    for g_t, g_r in zip(grads_t, grads_r, strict=True):
        assert_relative_close(g_t, g_r, 5e-2, "gradient")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_final_states_can_be_modified_in_place(cell, dtype):
    """A single layer's final states are handed back without a copy (the kernel's own fp32 buffer, or its
    conversion), yet they behave like torch.nn's: modifying them in place, with or without gradients, is
    allowed and leaves the output and the gradients unchanged."""
    cls, extra = CELLS[cell]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer = cls(4, 5, **extra).to(device=device, dtype=dtype)
    x = torch.randn(6, 3, 4, device=device, dtype=dtype)
    layer.backend = "triton"
    with torch.no_grad():
        _, state = layer(x)
    expected = [s.clone() for s in flatten_states(state)]
    for s in flatten_states(state):
        s.mul_(2)
    for s, e in zip(flatten_states(state), expected, strict=True):
        torch.testing.assert_close(s, 2 * e)
    results = []
    for modify in (False, True):
        layer.zero_grad()
        out, state = layer(x)
        if modify:
            for s in flatten_states(state):
                s.zero_()
        out.float().square().sum().backward()
        results.append([out.detach().clone()] + [p.grad.clone() for p in layer.parameters()])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _outputs_and_gradients(layer, x, lengths):
    """One forward+backward of ``layer`` on a fresh leaf copy of ``x`` (the same seeded upstream gradient
    each time): out, the final states, and the gradients of x and of every parameter."""
    layer.zero_grad()
    inp = x.clone().requires_grad_()
    out, state = layer(inp, lengths=lengths)
    torch.manual_seed(3)
    ((out * torch.randn_like(out)).sum() + sum(s.sum() for s in flatten_states(state))).backward()
    return [out, *flatten_states(state), inp.grad, *[p.grad.clone() for p in layer.parameters()]]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_triton_layer_on_the_tf32_gemm_path(monkeypatch, cell):
    """fp32 on CUDA under cuDNN's TF32 switch, the layer's input projection is kernels/projection.py's own
    autograd Function, whose output the kernels then overwrite with the saved gates (``overwrite_gx``). Taken
    here with cuBLAS's setting left alone (a no-op block, so the comparison stays at fp32 tolerance on a
    GPU too): outputs, states and every gradient still match the reference backend, and every GEMM outside
    the kernels (the projection, its gradients, dW_hh) runs in the TF32 block."""
    import contextlib

    from rnnlab.kernels import projection

    blocks = []  # one per TF32 block entered: the GEMMs that would run in TF32

    def counted_block():
        blocks.append(1)
        return contextlib.nullcontext()

    monkeypatch.setattr(projection, "follows_cudnn_tf32", lambda tensor: True)
    monkeypatch.setattr(projection, "cublas_tf32", counted_block)
    cls, extra = CELLS[cell]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer = cls(4, 5, num_layers=2, bidirectional=True, **extra).to(device)
    x = torch.randn(6, 3, 4, device=device)
    lengths = torch.tensor([6, 2, 4])
    results = {}
    for backend in ("reference", "triton"):
        layer.backend = backend
        results[backend] = _outputs_and_gradients(layer, x, lengths)
    # two layers: the projection of both directions forward (one block for both: projection.py's
    # project_both_directions), its backward, and each direction's dW_hh GEMMs (GRU's in two calls: the r
    # and z rows from their gate gradients, the n rows from the gradient of W_hn h + b_hn)
    assert len(blocks) == 2 * (2 + 2 * (2 if cell == "gru" else 1))
    for got, want in zip(results["triton"], results["reference"], strict=True):
        assert_relative_close(got, want, 1e-4, "output, state or gradient")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_bidirectional_layer_gives_the_same_results_however_its_directions_launch(monkeypatch, cell):
    """A bidirectional triton layer hands both directions to the kernels in one stacked call where they run
    in one launch (on chip, H = 5; with RNNLAB_BIDIR_LAUNCH=one on the split path too, H = 200 > the
    interpreter's on-chip bound), and otherwise runs them one after the other. Outputs, states and every
    gradient: identical to the bit between settings that take the same path, and to fp32's rounding
    between the stacked call and two calls (the stacked input projection is its own GEMM, and on the
    split path one launch gives each direction half the programs: other column tiles, other sums)."""
    cls, extra = CELLS[cell]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # (H, two settings that take the same path: identical bits; the third takes the other)
    for hidden, same, twin in ((5, "one", "auto"), (200, "separate", "auto")):
        torch.manual_seed(0)
        layer = cls(4, hidden, num_layers=2, bidirectional=True, backend="triton", **extra).to(device)
        x = torch.randn(5, 3, 4, device=device)
        lengths = torch.tensor([5, 1, 3])
        results = {}
        for how in ("separate", "auto", "one"):
            monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", how)
            results[how] = _outputs_and_gradients(layer, x, lengths)
        other = ({"separate", "auto", "one"} - {same, twin}).pop()
        for got, want, far in zip(results[same], results[twin], results[other], strict=True):
            assert torch.equal(got, want), (hidden, same, twin)
            assert_relative_close(far, want, 1e-5, f"H={hidden}: {other} against {twin}")


@pytest.mark.parametrize(
    "how, hidden, stacked",
    [("auto", 5, True), ("auto", 200, False), ("one", 200, True), ("separate", 5, False)],
)
def test_bidirectional_layer_stacks_its_directions_only_for_one_launch(monkeypatch, how, hidden, stacked):
    """The layer hands the kernels both directions in one call only where they run in one launch: a stacked
    call whose directions launch one after the other gains nothing and holds both directions' backward
    buffers at once (experiments/kernels/README.md, "Both directions in one launch")."""
    monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", how)
    calls = []
    both = rnnlab.LSTM._run_both_directions
    monkeypatch.setattr(rnnlab.LSTM, "_run_both_directions", lambda *a: calls.append(1) or both(*a))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer = rnnlab.LSTM(4, hidden, num_layers=2, bidirectional=True, backend="triton").to(device)
    out, (h_n, c_n) = layer(torch.randn(3, 2, 4, device=device))
    assert len(calls) == (2 if stacked else 0)  # one per layer
    assert out.shape == (3, 2, 2 * hidden) and h_n.shape == c_n.shape == (4, 2, hidden)
    assert h_n.is_contiguous() and c_n.is_contiguous()
