"""Checks on what a user passes to a layer, each failing with a message that names the argument and what was
expected, before anything deep inside can fail with an opaque shape error."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_input(x: torch.Tensor, input_size: int, weight: torch.Tensor, batch_first: bool) -> None:
    """x: (T, B, I) or (B, T, I) when batch_first, or unbatched (T, I)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor or a PackedSequence, got {type(x).__name__}")
    layout = "(B, T, input_size)" if batch_first else "(T, B, input_size)"
    if x.dim() not in (2, 3):
        raise ValueError(
            f"input must be 3-D {layout} or unbatched 2-D (T, input_size); got {x.dim()}-D of shape "
            f"{tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise ValueError(
            f"input has feature size {x.shape[-1]} (last dim of shape {tuple(x.shape)}), but the layer's "
            f"input_size is {input_size}"
        )
    if x.dim() == 3 and x.shape[0 if batch_first else 1] == 0:
        raise ValueError(f"input has an empty batch (B=0) in shape {tuple(x.shape)}; expected B >= 1")
    check_like("input", x, "the layer's weights", weight)


def check_like(name: str, tensor: torch.Tensor, other_name: str, other: torch.Tensor) -> None:
    """``tensor`` on ``other``'s device and, outside torch.autocast (which casts them), of its dtype."""
    if tensor.device != other.device:
        raise ValueError(f"{name} is on {tensor.device}, {other_name} on {other.device}; move one with .to()")
    if tensor.dtype != other.dtype and not torch.is_autocast_enabled(tensor.device.type):
        raise TypeError(f"{name} has dtype {tensor.dtype}, {other_name} {other.dtype}; cast one with .to()")


def check_state(
    name: str, state: torch.Tensor, expected: tuple[int, ...], like: torch.Tensor, unbatched: bool
) -> None:
    """An initial state (h0 or c0) of shape ``expected`` on the input's device and dtype."""
    if not isinstance(state, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(state).__name__}")
    if tuple(state.shape) != expected:
        what = (
            "(num_layers * num_directions, hidden_size)"
            if unbatched
            else ("(num_layers * num_directions, B, hidden_size)")
        )
        raise ValueError(f"{name} must have shape {what} = {expected}, got {tuple(state.shape)}")
    check_like(name, state, "the input", like)


def check_lengths(lengths: torch.Tensor | Sequence[int], batch: int, steps: int) -> torch.Tensor:
    """lengths: (B,) integers in [1, T]. Returns them as an int64 tensor (on their own device)."""
    if not isinstance(lengths, torch.Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"lengths must be a 1-D integer tensor or sequence, got {lengths!r}") from err
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"lengths must have shape (B,) = ({batch},), one length per sequence; got {tuple(lengths.shape)}"
        )
    if steps == 0:
        raise ValueError("lengths were given for an input with T = 0 steps; every length must be >= 1")
    if torch.compiler.is_compiling():
        return lengths.long()  # reading the values would break the graph: checked in eager mode only
    low, high = int(lengths.min()), int(lengths.max())
    if low < 1 or high > steps:
        raise ValueError(f"lengths must lie in [1, T] = [1, {steps}]; got values from {low} to {high}")
    return lengths.long()
