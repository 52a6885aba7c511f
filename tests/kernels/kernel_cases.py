"""Shared by the kernel tests: draw inputs for a case, run the fused kernel and the reference on them,
compare outputs, final states and every gradient.

The reference runs in float64 on the very values the kernel sees (its inputs rounded to the test dtype),
so the comparison measures the kernel's own error, and the tolerance is chosen for the dtype alone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from rnnlab.kernels import gru as gru_kernels
from rnnlab.kernels import lstm as lstm_kernels
from rnnlab.kernels import rnn as rnn_kernels

from rnnlab import kernels, reference

# The interpreter runs the kernels on CPU tensors; with a GPU present (and no interpreter) the same cases
# run compiled, on CUDA tensors.
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
# (rtol, atol) of the kernel against the float64 reference, scaled by max(1, max |reference|) for atol.
# fp32: the dot is exact fp32 (interpreter) / "tf32x3" (GPU: three TF32 products, about 2^-21 relative
# error per product); summation order differs.
# bf16/fp16: the state is fp32 but h is rounded to the dtype for each step's dot, and outputs, saved gates
# and gradients are stored in the dtype (8 / 11 significand bits).
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (3e-2, 3e-2), torch.float16: (5e-3, 5e-3)}


@dataclass(frozen=True)
class Case:
    cell: str  # "lstm", "gru" or "rnn"
    batch: int
    steps: int
    hidden: int
    dtype: torch.dtype = torch.float32
    lengths: bool = False
    reverse: bool = False
    init: str = "random"  # initial states: "random" or "zeros"
    nonlinearity: str = "tanh"  # rnn only
    bias: bool = True  # gru only: b_hh or None
    directions: int = 1  # 2: both directions of a bidirectional layer stacked in one call (reverse False)


def draw_inputs(case: Case, device: str | torch.device = DEVICE) -> dict[str, torch.Tensor | None]:
    """Fresh random inputs in float64, already rounded to case.dtype. W_hh ~ N(0, 1/H): gates neither
    saturate nor vanish, so every gradient path carries signal."""
    g, h, b = GATES[case.cell], case.hidden, case.batch
    lead = (2,) if case.directions == 2 else ()  # the stacked form: a leading direction axis on each

    def draw(*shape, scale=1.0):
        shape = (*lead, *shape)
        return (torch.randn(*shape, dtype=torch.float64, device=device) * scale).to(case.dtype).double()

    def state():
        if case.init == "random":
            return draw(b, h, scale=0.5)
        return torch.zeros(*lead, b, h, dtype=torch.float64)

    inputs = {"gx": draw(case.steps, b, g * h), "w_hh": draw(g * h, h, scale=h**-0.5)}
    if case.cell == "gru":
        inputs["b_hh"] = draw(g * h, scale=0.5) if case.bias else None
    inputs["h0"] = state().to(device)
    if case.cell == "lstm":
        inputs["c0"] = state().to(device)
    return inputs


def draw_lengths(case: Case, device: str | torch.device = DEVICE) -> torch.Tensor | None:
    """(B,) lengths in [0, T], drawn fresh; with B >= 3 one full-length row and one empty row included."""
    if not case.lengths:
        return None
    lengths = torch.randint(0, case.steps + 1, (case.batch,))
    if case.batch >= 3:
        lengths[0], lengths[1] = case.steps, 0
    return lengths.to(device)


def run(case: Case, inputs, lengths, impl: str, dtype: torch.dtype, block_h: int = 0):
    """Call the fused kernel ("kernel": the public function, or the tiled path when block_h > 0) or the
    reference ("reference") on leaf copies of ``inputs`` in ``dtype``. Returns (outputs, leaves)."""
    leaves = {k: None if v is None else v.to(dtype).requires_grad_() for k, v in inputs.items()}
    args = list(leaves.values())
    if case.cell == "lstm":
        if impl == "reference":
            outputs = reference.lstm_recurrence(*args, lengths, case.reverse)
        elif block_h:
            outputs = lstm_kernels._lstm(*args, lengths, case.reverse, block_h)
        else:
            outputs = kernels.lstm_recurrence(*args, lengths, case.reverse)
    elif case.cell == "gru":
        if impl == "reference":
            outputs = reference.gru_recurrence(*args, lengths, case.reverse)
        elif block_h:
            outputs = gru_kernels._gru(*args, lengths, case.reverse, block_h)
        else:
            outputs = kernels.gru_recurrence(*args, lengths, case.reverse)
    else:
        if impl == "reference":
            outputs = reference.rnn_recurrence(*args, lengths, case.reverse, case.nonlinearity)
        elif block_h:
            outputs = rnn_kernels._rnn(*args, lengths, case.reverse, case.nonlinearity, block_h)
        else:
            outputs = kernels.rnn_recurrence(*args, lengths, case.reverse, case.nonlinearity)
    return tuple(outputs), leaves


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    rtol, atol = TOLERANCE[dtype]
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    torch.testing.assert_close(
        actual.double(), expected.double(), rtol=rtol, atol=atol * scale, msg=lambda m: f"{what}: {m}"
    )


def check(case: Case, device: str | torch.device = DEVICE, block_h: int = 0) -> None:
    """Kernel against the float64 reference: outputs, final states, and the gradients of every input."""
    inputs = draw_inputs(case, device)
    lengths = draw_lengths(case, device)
    got, got_leaves = run(case, inputs, lengths, "kernel", case.dtype, block_h)
    want, want_leaves = run(case, inputs, lengths, "reference", torch.float64)
    names = ("out", "h_n", "c_n")[: len(want)]
    for name, a, b in zip(names, got, want, strict=True):
        assert a.dtype == case.dtype and a.shape == b.shape, name
        assert_close(a, b, case.dtype, name)

    upstream = [torch.randn_like(w) for w in want]  # fresh gradients for out and every final state
    torch.autograd.backward(got, [u.to(case.dtype) for u in upstream])
    torch.autograd.backward(want, upstream)
    for name, leaf in got_leaves.items():
        if leaf is None:
            continue
        assert leaf.grad is not None, f"no gradient for {name}"
        assert leaf.grad.dtype == case.dtype, name
        assert_close(leaf.grad, want_leaves[name].grad, case.dtype, f"d {name}")
