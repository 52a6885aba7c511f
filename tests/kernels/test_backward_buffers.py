"""What the fused backward allocates: no gradient is made for the tensors the forward only saves (LSTM gates
and cell states, GRU gates and gh_n), and a retained graph can be run backward twice with the same result.

The saved tensors are (T, B, 4H): autograd used to hand the backward a zero tensor of that size for each of
them (materialized gradients of unused outputs), alive beside the saved tensors and their gradients, which
is what lifted the peak memory above cuDNN's (experiments/kernels/README.md, "memory")."""

import pytest
import torch
from kernel_cases import Case, assert_close, draw_inputs, draw_lengths, run
from torch.utils._python_dispatch import TorchDispatchMode

# common.new_buffer: torch.empty, or torch.full(NaN) under the tests' poison hook (tests/kernels/conftest.py)
NEW_BUFFERS = {torch.ops.aten.empty.memory_format, torch.ops.aten.full.default}
ZERO_FILLS = {
    torch.ops.aten.zeros.default,
    torch.ops.aten.zeros_like.default,
    torch.ops.aten.new_zeros.default,
}


class ShapesMade(TorchDispatchMode):
    """Records (op, output shape) of every op dispatched inside the block."""

    def __init__(self):
        super().__init__()
        self.made = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.made.append((func, tuple(t.shape)))
        return out


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_backward_makes_no_zero_gradient_of_sequence_size(cell):
    case = Case(cell, batch=3, steps=5, hidden=20)
    (out, *_), _ = run(case, draw_inputs(case), None, "kernel", torch.float32)
    with ShapesMade() as mode:
        out.backward(torch.randn_like(out))  # h_n (and c_n) unused: their gradients are small zeros at most
    zero_fills = [(str(func), shape) for func, shape in mode.made if func in ZERO_FILLS]
    assert all(len(shape) < 3 for _, shape in zero_fills), zero_fills
    assert mode.made, "the dispatch mode saw nothing: the check above would pass vacuously"


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_retained_graph_gives_the_same_gradients_twice(cell):
    case = Case(cell, batch=3, steps=5, hidden=20)
    outputs, leaves = run(case, draw_inputs(case), None, "kernel", torch.float32)
    upstream = [torch.randn_like(o) for o in outputs]
    first = torch.autograd.grad(outputs, list(leaves.values()), upstream, retain_graph=True)
    second = torch.autograd.grad(outputs, list(leaves.values()), upstream)
    for name, a, b in zip(leaves, first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"d {name} differs on the second backward")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("retain", [False, True], ids=["graph-freed", "graph-retained"])
def test_gate_gradients_overwrite_the_saved_gates_only_when_the_graph_is_freed(cell, retain):
    case = Case(cell, batch=3, steps=5, hidden=20)
    outputs, leaves = run(case, draw_inputs(case), None, "kernel", torch.float32)
    # the saved gates, whose gradients are written over them: LSTM i, f, g, o (T, B, 4H); GRU r, z, n
    # (T, B, 3H). GRU's gh_n (T, B, H) is saved too, and its gradient always takes a buffer of its own.
    gates_shape = (case.steps, case.batch, {"lstm": 4, "gru": 3}[cell] * case.hidden)
    state_shape = (case.steps, case.batch, case.hidden)
    with ShapesMade() as mode:
        torch.autograd.grad(
            outputs[0], list(leaves.values()), torch.randn_like(outputs[0]), retain_graph=retain
        )
    made = [shape for func, shape in mode.made if func in NEW_BUFFERS]
    assert made.count(gates_shape) == (1 if retain else 0), made
    assert made.count(state_shape) == (1 if cell == "gru" else 0), made


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_gradients_through_the_final_state_only(cell, lengths):
    """Many-to-one use (a classifier on h_n): the sequence output takes no gradient, the backward kernel is
    given none (no (T, B, H) zeros are made or read), and every gradient still matches the reference."""
    case = Case(cell, batch=3, steps=7, hidden=20, lengths=lengths, reverse=lengths)
    inputs, lengths_ = draw_inputs(case), draw_lengths(case)
    got, got_leaves = run(case, inputs, lengths_, "kernel", torch.float32)
    want, want_leaves = run(case, inputs, lengths_, "reference", torch.float64)
    upstream = torch.randn_like(want[1])
    with ShapesMade() as mode:
        torch.autograd.backward(got[1], upstream.float())
    out_shape = (case.steps, case.batch, case.hidden)
    assert not [f for f, shape in mode.made if f in ZERO_FILLS and shape == out_shape]
    torch.autograd.backward(want[1], upstream)
    for name, leaf in got_leaves.items():
        if leaf is not None:
            assert_close(leaf.grad, want_leaves[name].grad, torch.float32, f"d {name}")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("path", ["on-chip", "resident", "streamed"])
@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_gates_written_over_gx_change_nothing_else(monkeypatch, cell, path, lengths):
    """overwrite_gx=True, what the layers pass for the gx they own: while training, the forward makes no
    buffer of gx's shape of its own and writes the saved gates over gx (LSTM i, f, g, o; GRU r, z, n); every
    output and gradient is identical, to the bit, to a call without it, on each of launch.py's paths. Without
    a gradient to compute, gx is left alone."""
    from rnnlab.kernels import common, gru, launch, lstm

    block_h = 0 if path == "on-chip" else 16
    if path == "streamed":
        monkeypatch.setenv("RNNLAB_RESIDENT", "0")  # W_hh re-read every step, one tile per program at a time
    plan = launch.plan(common.GATES[cell], 20, 3, torch.float32, torch.device("cpu"), block_h)
    assert (plan.meta["ON_CHIP"], plan.meta["RESIDENT"]) == {
        "on-chip": (True, False),
        "resident": (False, True),
        "streamed": (False, False),
    }[path]

    recurrence = {"lstm": lstm._lstm, "gru": gru._gru}[cell]
    case = Case(cell, batch=3, steps=7, hidden=20, lengths=lengths, reverse=lengths)
    inputs, lens = draw_inputs(case), draw_lengths(case)
    gates_shape = tuple(inputs["gx"].shape)
    finals = {"lstm": 2, "gru": 1}[cell]  # h_n (and c_n)
    upstream = [torch.randn(case.steps, case.batch, case.hidden)]
    upstream += [torch.randn(case.batch, case.hidden) for _ in range(finals)]
    results = []
    for overwrite in (False, True):
        leaves = {name: t.float().requires_grad_() for name, t in inputs.items()}
        gx = leaves["gx"] * 1  # a non-leaf of the caller's own, as the layers' input projection
        before = gx.detach().clone()
        with ShapesMade() as mode:
            outputs = recurrence(gx, *list(leaves.values())[1:], lens, case.reverse, block_h, overwrite)
        made = [str(func) for func, shape in mode.made if func in NEW_BUFFERS and shape == gates_shape]
        assert len(made) == (0 if overwrite else 1), made
        assert torch.equal(gx.detach(), before) != overwrite, "gx overwritten exactly when asked"
        grads = torch.autograd.grad(outputs, list(leaves.values()), upstream)
        results.append([o.detach() for o in outputs] + list(grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with torch.no_grad():
        gx = inputs["gx"].float()
        before = gx.clone()
        recurrence(gx, *[t.float() for t in list(inputs.values())[1:]], lens, case.reverse, block_h, True)
    assert torch.equal(gx, before), "no gradient needed: nothing saved, gx untouched"


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_overwrite_gx_refuses_a_leaf_that_requires_grad(cell):
    from rnnlab import kernels

    recurrence = {"lstm": kernels.lstm_recurrence, "gru": kernels.gru_recurrence}[cell]
    case = Case(cell, batch=2, steps=3, hidden=16)
    inputs = {name: t.float() for name, t in draw_inputs(case).items()}
    gx = inputs.pop("gx").requires_grad_()
    before = gx.detach().clone()
    with pytest.raises(ValueError, match="overwrite_gx=True would overwrite gx, a leaf"):
        recurrence(gx, *inputs.values(), overwrite_gx=True)
    assert torch.equal(gx.detach(), before)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_recurrent_weight_grad_into_rows_of_a_larger_gradient(reverse, with_lengths):
    """``into=`` (GRU writes its r, z rows and its n rows of dW_hh so, without a cat) gives the same
    numbers, to the bit, as the returned tensor, and returns the rows it filled; with no step, zeros."""
    from rnnlab.kernels import common

    steps, batch, hidden = 5, 3, 8
    lengths = torch.tensor([5, 0, 3]) if with_lengths else None
    d_gates, out = torch.randn(steps, batch, 3 * hidden), torch.randn(steps, batch, hidden)
    h0 = torch.randn(batch, hidden)
    whole = torch.full((4 * hidden, hidden), float("nan"))
    rows = whole[hidden:]  # the last 3H rows: a contiguous view of a larger tensor
    got = common.recurrent_weight_grad(d_gates, out, h0, lengths, reverse, into=rows)
    assert got.data_ptr() == rows.data_ptr()
    want = common.recurrent_weight_grad(d_gates, out, h0, lengths, reverse)
    torch.testing.assert_close(rows, want, rtol=0, atol=0)
    assert whole[:hidden].isnan().all(), "rows outside ``into`` untouched"
    empty = common.recurrent_weight_grad(d_gates[:0], out[:0], h0, lengths, reverse, into=rows)
    assert empty.data_ptr() == rows.data_ptr() and not rows.any()


@pytest.mark.parametrize("impl", ["kernel", "reference"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_create_graph_gives_first_derivatives_and_refuses_a_second(cell, impl):
    """create_graph=True (a gradient penalty, say) gives the same first derivatives as a plain backward;
    differentiating them again raises, even from a constant upstream gradient and beside a term that does
    have a graph, rather than returning a second derivative that silently leaves out the recurrence (what
    torch's once_differentiable would do there). Both backwards write with out= ops, which autograd
    refuses while it records a graph: they run without one."""
    case = Case(cell, batch=3, steps=5, hidden=20, lengths=True, reverse=True)
    inputs, lengths = draw_inputs(case), draw_lengths(case)
    upstream = torch.randn(case.steps, case.batch, case.hidden)
    grads = []
    for create_graph in (False, True):
        outputs, leaves = run(case, inputs, lengths, impl, torch.float32)
        weights = [leaf for leaf in leaves.values() if leaf is not None]
        grads.append(torch.autograd.grad(outputs[0], weights, upstream, create_graph=create_graph))
    for plain, recorded in zip(*grads, strict=True):
        torch.testing.assert_close(recorded, plain, rtol=0, atol=0)
    penalty = sum(g.pow(2).sum() for g in grads[1]) + sum(w.sum() for w in weights)
    with pytest.raises(RuntimeError, match="first derivatives only"):
        penalty.backward()


@pytest.mark.parametrize("ask", ["every input", "gx alone", "allow_unused"])
@pytest.mark.parametrize("impl", ["kernel", "reference"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_second_derivative_asked_of_autograd_grad_raises(cell, impl, ask):
    """torch.autograd.grad runs only the nodes on a path to what it is asked about. The refusing node must
    be on that path, for every input and for gx alone (which the recurrences do not save), and must not
    give way to a silent zero under allow_unused/materialize_grads."""
    case = Case(cell, batch=3, steps=5, hidden=20, lengths=True)
    inputs, lengths = draw_inputs(case), draw_lengths(case)
    outputs, leaves = run(case, inputs, lengths, impl, torch.float32)
    leaves = {name: leaf for name, leaf in leaves.items() if leaf is not None}
    upstream = torch.randn(case.steps, case.batch, case.hidden)
    (d_gx,) = torch.autograd.grad(outputs[0], leaves["gx"], upstream, create_graph=True)
    penalty = d_gx.pow(2).sum()
    wrt = [leaves["gx"]] if ask == "gx alone" else list(leaves.values())
    options = dict(allow_unused=True, materialize_grads=True) if ask == "allow_unused" else {}
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(penalty, wrt, **options)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_registered_op_refuses_to_overwrite_gx(cell):
    """The registered op (what torch.compile traces) declares no mutation: called directly with
    overwrite_gx=True it raises a ValueError naming the argument, before touching gx; with False it runs."""
    from rnnlab.kernels import gru, lstm  # noqa: F401  (importing a cell module registers its ops)

    case = Case(cell, batch=2, steps=3, hidden=16)
    inputs = {name: t.float() for name, t in draw_inputs(case).items()}
    gx = inputs.pop("gx")
    before = gx.clone()
    op = getattr(torch.ops.rnnlab, f"{cell}_fwd")
    args = (gx, *inputs.values(), None, False, True, 0)  # lengths, reverse, save, block_h
    with pytest.raises(ValueError, match="overwrite_gx=True"):
        op(*args, True)
    assert torch.equal(gx, before)
    outputs = op(*args, False)
    assert torch.equal(gx, before) and outputs[0].shape == (case.steps, case.batch, case.hidden)
