"""What the three reference recurrences share: time order, the validity mask, and their interface.

Every recurrence here, and every fused kernel in ``rnnlab.kernels``, takes the same arguments:

- ``gx``: (T, B, G*H) input part of the gates for every step, ``x_t @ W_ih.T + bias`` computed as one GEMM
  outside the recurrence (G = 4 for LSTM, 3 for GRU, 1 for RNN), time-major.
- ``w_hh``: (G*H, H) the recurrent weight, torch.nn's layout and gate order.
- ``h0`` (and ``c0`` for LSTM): (B, H) initial states.
- ``lengths``: optional (B,) integer tensor, values in [0, T]. Row b is valid for t < lengths[b]. Past its
  length a row's state stops changing and its output is zero (a row of length 0 keeps h0). With
  ``reverse=True`` row b is walked from t = lengths[b] - 1 down to 0, starting from h0: exactly what
  torch.nn gives for a PackedSequence.
- ``reverse``: walk time from T-1 down to 0 (the backward direction of a bidirectional layer).

They return ``out`` (T, B, H) and the final states (B, H). Arguments that break this interface raise a
ValueError or TypeError naming them (``check_inputs``, shared with the kernels).

Both directions of a bidirectional layer may also go in one call: ``gx`` (2, T, B, G*H), ``w_hh``
(2, G*H, H), the states (2, B, H) (and GRU's ``b_hh`` (2, 3H)), ``reverse`` False; direction 0 runs forward
in time, direction 1 in reverse, and every output comes back stacked the same way (``both_directions``).
The fused kernels run such a call in one launch where they can; here it is two calls.

Internally every recurrence runs forward in "processing order": a reverse direction flips its inputs once
before the loop and its outputs once after it, so one loop serves both directions. The same validity mask
serves both directions too: a forward row freezes after its length, a reverse row waits (holding h0) until
its first valid step.
"""

from __future__ import annotations

import functools

import torch
from torch._subclasses.fake_tensor import is_fake


def validity_mask(lengths: torch.Tensor | None, steps: int, device: torch.device) -> torch.Tensor | None:
    """(T, B, 1) bool: True where step t of row b is inside that row's length; None without lengths."""
    if lengths is None:
        return None
    lengths = lengths.to(device=device, dtype=torch.long)
    return (torch.arange(steps, device=device)[:, None] < lengths[None, :]).unsqueeze(-1)


def to_processing_order(tensor: torch.Tensor | None, reverse: bool) -> torch.Tensor | None:
    """Flip the time axis (dim 0) for a reverse direction; identity otherwise."""
    if tensor is None or not reverse:
        return tensor
    return tensor.flip(0)


def both_directions(run, reverse: bool) -> tuple[torch.Tensor, ...]:
    """The outputs of ``run(0)`` (direction 0, forward in time) and ``run(1)`` (direction 1, reverse), each
    stacked on a new leading axis: the stacked form of the interface above, where ``reverse`` must be
    False."""
    check_both_directions(reverse)
    return tuple(torch.stack(pair) for pair in zip(run(0), run(1), strict=True))


def check_both_directions(reverse: bool) -> None:
    """A call holding both directions (the stacked form above) runs direction 1 in reverse itself:
    ``reverse`` must be False (here and in ``rnnlab.kernels``)."""
    if reverse:
        raise ValueError(
            "reverse must be False when gx holds both directions, (2, T, B, G*H): direction 1 runs in reverse"
        )


INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_inputs(
    gx: torch.Tensor,
    w_hh: torch.Tensor,
    states: dict[str, torch.Tensor],
    gates: int,
    *,
    b_hh: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    reverse: bool = False,
    dtypes: tuple[torch.dtype, ...] | None = None,
) -> int:
    """Check the arguments of the interface above, for these recurrences and ``rnnlab.kernels``' alike;
    returns H. ``states``: the initial states, each (B, H) (stacked: (2, B, H)), by the name an error should
    give them ({"h0": h0, "c0": c0}); ``b_hh``: GRU's (G*H,) (stacked: (2, G*H)); ``gates``: G;
    ``dtypes``: the dtypes allowed (None: any floating-point one). Raises ValueError (shape, device, value)
    or TypeError (type, dtype) naming the argument and the shape expected.

    Shapes and dtypes only, a few Python comparisons, except the values of ``lengths``, which must lie in
    [0, T] (a row of length 0 keeps its initial state): read only when lengths are on the CPU and not being
    traced by torch.compile, since reading CUDA values would wait for the GPU at every call (the layers
    check theirs, in [1, T], once per forward: ``rnnlab.validation.check_lengths``).
    """
    if not isinstance(gx, torch.Tensor):
        raise TypeError(f"gx must be a tensor (T, B, {gates}*H), got {type(gx).__name__}")
    both = gx.dim() == 4 and gx.shape[0] == 2
    if (gx.dim() != 3 and not both) or gx.shape[-1] % gates:
        both_form = f"(2, T, B, {gates}*H) for both directions"
        raise ValueError(f"gx must be (T, B, {gates}*H), or {both_form}, got {tuple(gx.shape)}")
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse must be a bool, got {reverse!r}")
    if both:
        check_both_directions(reverse)
    lead, steps, batch, hidden = tuple(gx.shape[:-3]), gx.shape[-3], gx.shape[-2], gx.shape[-1] // gates
    expected = {"w_hh": (*lead, gates * hidden, hidden)}
    expected.update({name: (*lead, batch, hidden) for name in states})
    tensors = {"w_hh": w_hh, **states}
    if b_hh is not None:
        expected["b_hh"], tensors["b_hh"] = (*lead, gates * hidden), b_hh
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a tensor {expected[name]}, got {type(tensor).__name__}")
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(
                f"{name} must be {expected[name]}, got {tuple(tensor.shape)} "
                f"(B = {batch}, H = {hidden}: gx is {tuple(gx.shape)}, its last dimension {gates}*H)"
            )
        if tensor.device != gx.device:
            raise ValueError(f"{name} is on {tensor.device}, gx on {gx.device}: they must be on one device")
    allowed = gx.dtype in dtypes if dtypes is not None else gx.dtype.is_floating_point
    if not allowed or any(tensor.dtype != gx.dtype for tensor in tensors.values()):
        kinds = f"one dtype of {dtypes}" if dtypes is not None else "one floating-point dtype"
        tensors = {"gx": gx, **tensors}
        got = ", ".join(f"{name} {tensor.dtype}" for name, tensor in tensors.items())
        raise TypeError(f"{', '.join(tensors)} must share {kinds}, got {got}")
    check_lengths(lengths, batch, steps)
    return hidden


def check_lengths(lengths: torch.Tensor | None, batch: int, steps: int | None = None) -> None:
    """``lengths`` of the interface above: None, or a (B,) integer tensor on any device, its values in
    [0, T] (checked on the CPU only, and not with ``steps`` None: ``check_inputs``)."""
    if lengths is None:
        return
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths must be a ({batch},) integer tensor or None, got {type(lengths).__name__}")
    if lengths.dtype not in INTEGER_DTYPES:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape (B,) = ({batch},), got {tuple(lengths.shape)}")
    if steps is None or lengths.device.type != "cpu" or batch == 0:
        return
    if torch.compiler.is_compiling() or is_fake(lengths):  # reading values would break the graph
        return
    low, high = (int(v) for v in torch.aminmax(lengths))
    if low < 0 or high > steps:
        raise ValueError(f"lengths must lie in [0, T] = [0, {steps}], got values from {low} to {high}")


def previous_states(first: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """(T, B, H) state entering each step: ``first`` then ``states[:-1]``."""
    return torch.cat([first.unsqueeze(0), states[:-1]], dim=0)


def masked(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero where the mask is False. ``where`` rather than a product, so NaN in padding stays out."""
    if mask is None:
        return values
    return torch.where(mask, values, values.new_zeros(()))


def zeros_if_none(grad: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(like) if grad is None else grad


def tanh(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """tanh(x), as 2 sigmoid(2x) - 1 on the CPU.

    On the CPUs measured here ATen's tanh is 4-9x slower than its sigmoid (69 against 8 us for 64 x 512
    floats), and it splits even a few thousand elements across threads, which costs milliseconds per call
    when another process holds the other core. The identity is exact in real arithmetic; in fp32 it differs
    from tanh by about one unit in the last place of 1. Elsewhere (CUDA) torch.tanh is used as it is.
    """
    if x.device.type != "cpu":
        return torch.tanh(x, out=out)
    return torch.sigmoid(x * 2, out=out).mul_(2).sub_(1)


SECOND_DERIVATIVE = (
    "rnnlab's recurrences have first derivatives only: a gradient computed with create_graph=True cannot be "
    "differentiated again (as for torch.nn's cuDNN RNNs)"
)


def first_derivatives_only(backward):
    """For a custom autograd Function's ``backward``: with create_graph=True it runs without recording a
    graph, and the gradients it returns carry a node that raises (SECOND_DERIVATIVE) if anything
    differentiates through them, as cuDNN's RNN backward does. Unlike torch's once_differentiable, that
    holds even when the incoming gradients are constants, so a second derivative is never silently left
    out. Without create_graph, ``backward`` runs as it is.

    The raising node also leads to every saved tensor that requires grad: ``torch.autograd.grad`` only
    runs the nodes on a path to the tensors it is asked about, so a node reachable from nothing it asks
    about would never run (a parameter "not used in the graph", or with ``allow_unused`` and
    ``materialize_grads`` a silent zero). A Function whose inputs are not all saved saves one of its
    outputs, whose node leads to all of them (the recurrences save h_n)."""

    @functools.wraps(backward)
    def wrapped(ctx, *grads):
        if not torch.is_grad_enabled():
            return backward(ctx, *grads)
        with torch.no_grad():
            result = backward(ctx, *grads)
        results = result if isinstance(result, tuple) else (result,)
        where = [i for i, r in enumerate(results) if isinstance(r, torch.Tensor) and r.is_floating_point()]
        if not where:
            return result
        anchors = [t for t in ctx.saved_tensors if t is not None and t.requires_grad]
        guarded = torch._C._functions.DelayedError(SECOND_DERIVATIVE.encode(), len(where) + len(anchors))(
            *[results[i].detach().requires_grad_() for i in where], *anchors
        )
        guarded = guarded if isinstance(guarded, tuple) else (guarded,)
        results = list(results)
        for i, tensor in zip(where, guarded[: len(where)], strict=True):
            results[i] = tensor
        return tuple(results) if isinstance(result, tuple) else results[0]

    return wrapped
