"""What the three reference recurrences share: time order, the validity mask, and their interface.

Every recurrence here, and every fused kernel in ``rnnlab.kernels``, takes the same arguments:

- ``gx``: (T, B, G*H) input part of the gates for every step, ``x_t @ W_ih.T + bias`` computed as one GEMM
  outside the recurrence (G = 4 for LSTM, 3 for GRU, 1 for RNN), time-major.
- ``w_hh``: (G*H, H) the recurrent weight, torch.nn's layout and gate order.
- ``h0`` (and ``c0`` for LSTM): (B, H) initial states.
- ``lengths``: optional (B,) integer tensor. Row b is valid for t < lengths[b]. Past its length a row's
  state stops changing and its output is zero. With ``reverse=True`` row b is walked from
  t = lengths[b] - 1 down to 0, starting from h0: exactly what torch.nn gives for a PackedSequence.
- ``reverse``: walk time from T-1 down to 0 (the backward direction of a bidirectional layer).

They return ``out`` (T, B, H) and the final states (B, H).

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
