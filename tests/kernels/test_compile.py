"""The kernels are torch.library custom ops (rnnlab::{lstm,gru,rnn}_{fwd,bwd}) with fake (meta) functions and
registered autograd, so torch.compile traces a function calling them with fullgraph=True, no graph break.

Backend "aot_eager": it traces forward and backward through the fake functions and the autograd formula
exactly as inductor does, then runs the graph eagerly. (Inductor itself would also work, since the ops are
opaque to it, but needs a C++ toolchain for the CPU graph around them and is much slower to compile.)
Why custom_op rather than triton_op + wrap_triton: under TRITON_INTERPRET=1, wrap_triton returns the
interpreted kernel itself, which then runs on fake tensors during tracing and fails; custom_op behaves
the same on the CPU and on the GPU."""

import pytest
import torch
from kernel_cases import Case, draw_inputs, draw_lengths

from rnnlab import kernels


def _loss(cell, lengths, reverse):
    def lstm(gx, w_hh, h0, c0):
        out, h_n, c_n = kernels.lstm_recurrence(gx, w_hh, h0, c0, lengths, reverse)
        return out.square().sum() + h_n.sum() + c_n.sum()

    def gru(gx, w_hh, b_hh, h0):
        out, h_n = kernels.gru_recurrence(gx, w_hh, b_hh, h0, lengths, reverse)
        return out.square().sum() + h_n.sum()

    def rnn(gx, w_hh, h0):
        out, h_n = kernels.rnn_recurrence(gx, w_hh, h0, lengths, reverse, "tanh")
        return out.square().sum() + h_n.sum()

    return {"lstm": lstm, "gru": gru, "rnn": rnn}[cell]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_compile_fullgraph_matches_eager(cell):
    torch._dynamo.reset()
    case = Case(cell, 3, 5, 20, lengths=True, reverse=True)
    inputs = [t.float().requires_grad_() for t in draw_inputs(case).values()]
    loss = _loss(cell, draw_lengths(case), case.reverse)
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")

    got = compiled(*inputs)
    got_grads = torch.autograd.grad(got, inputs)
    want = loss(*inputs)
    want_grads = torch.autograd.grad(want, inputs)
    torch.testing.assert_close(got, want)
    for a, b in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_compiled_graph_calls_the_registered_ops(cell):
    """Eager calls skip torch.library (common.eager_autograd); torch.compile must still see the custom ops,
    forward and backward, as opaque calls in its graphs."""
    torch._dynamo.reset()
    case = Case(cell, 3, 5, 20, lengths=True)
    inputs = [t.float().requires_grad_() for t in draw_inputs(case).values()]
    targets = []

    def recording(graph_module, example_inputs):
        for node in graph_module.graph.nodes:  # a mutating op is wrapped: auto_functionalized(op, ...)
            wrapped = "auto_functionalized" in str(node.target)
            targets.append(str(node.args[0] if wrapped else node.target))
        return graph_module.forward

    from torch._dynamo.backends.common import aot_autograd

    compiled = torch.compile(
        _loss(cell, draw_lengths(case), case.reverse),
        fullgraph=True,
        backend=aot_autograd(fw_compiler=recording, bw_compiler=recording),
    )
    torch.autograd.grad(compiled(*inputs), inputs)
    assert f"rnnlab.{cell}_fwd.default" in targets
    assert f"rnnlab.{cell}_bwd.default" in targets


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_eager_calls_match_the_custom_ops_bit_for_bit(monkeypatch, cell):
    """The eager path (a plain autograd.Function around the same implementation) against the registered
    ops called eagerly: the same outputs and gradients, to the bit."""
    from kernel_cases import run
    from rnnlab.kernels import common, gru, lstm, rnn

    module = {"lstm": lstm, "gru": gru, "rnn": rnn}[cell]
    case = Case(cell, 3, 5, 20, torch.float32, lengths=True, reverse=True)
    inputs, lengths = draw_inputs(case), draw_lengths(case)
    results = []
    for through_ops in (False, True):
        if through_ops:
            monkeypatch.setattr(module, f"_{cell}_forward", getattr(module, f"_{cell}_fwd"))
            monkeypatch.setattr(common, "op_or_impl", lambda op, impl, tensor: op)
        got, leaves = run(case, inputs, lengths, "kernel", case.dtype)
        torch.autograd.backward(got, [torch.ones_like(g) for g in got])
        results.append([*got, *(leaf.grad for leaf in leaves.values() if leaf is not None)])
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fake_tensors_reach_the_fake_functions_outside_dynamo(cell):
    """AOTAutograd traces a registered backward with fake tensors, and torch 2.11 leaves
    torch.compiler.is_compiling() False while it does: the GPU run of 2026-11-27 failed all the compile
    tests with "Cannot access data pointer" from a kernel launched on fake tensors. Here the same happens
    without Dynamo: fake inputs, forward and backward, must go through the ops' fake functions."""
    from torch._subclasses.fake_tensor import FakeTensorMode, is_fake

    case = Case(cell, 3, 5, 20, lengths=True, reverse=True)
    real = [t.float() for t in draw_inputs(case).values()]
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        inputs = [mode.from_tensor(t).requires_grad_() for t in real]
        lengths = mode.from_tensor(draw_lengths(case))
        loss = _loss(cell, lengths, case.reverse)(*inputs)
        grads = torch.autograd.grad(loss, inputs)
    assert is_fake(loss)
    assert [g.shape for g in grads] == [t.shape for t in real]
