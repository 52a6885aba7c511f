"""Both directions of a bidirectional layer at once, on two CUDA streams.

A direction's recurrence on the fused kernels of a small batch occupies a few SMs for T dependent steps
(on chip: one program per 16 rows), so the reverse direction can run beside the forward one instead of
after it. The forward direction runs on the current stream, the reverse on a side stream of the same
device; autograd runs each backward on its forward's stream, so the backward passes overlap too.

Off unless ``RNNLAB_BIDIR_STREAMS=1`` (a comparison switch until a GPU run has timed it; see
experiments/kernels/README.md). Only on CUDA, only for the triton backend's bidirectional layers. While it
is on, every split-path plan on CUDA fills at most half the SMs (``kernels.launch.sms_for_a_plan``), so
that the two directions' grid-synchronized kernels can be resident at once instead of waiting on each
other forever; plans on chip, whose programs never wait for each other, are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rnnlab.kernels import launch  # imports no Triton

_SIDE: dict[torch.device, torch.cuda.Stream] = {}


def enabled(device: torch.device) -> bool:
    """The switch is on and the layer runs eagerly on a CUDA device (not while torch.compile traces it)."""
    if device.type != "cuda" or torch.compiler.is_compiling():
        return False
    return launch.bidir_streams()


def side_by_side(forward: Callable, reverse: Callable, forward_args: tuple, reverse_args: tuple):
    """(forward(*forward_args), reverse(*reverse_args)): the first on the current stream, the second on a
    side stream, overlapping; the current stream waits for the side stream before returning.

    The caching allocator ties a block to the stream it was allocated on: the reverse direction's inputs
    (made on the current stream) are marked as used by the side stream, so their memory is not handed out
    again while it still reads them, and its outputs (made on the side stream) as used by the current
    stream, which reads them next."""
    main = torch.cuda.current_stream()
    device = main.device
    side = _SIDE.get(device)
    if side is None:
        side = _SIDE[device] = torch.cuda.Stream(device)
    side.wait_stream(main)  # the reverse direction's inputs are complete
    for tensor in _tensors(reverse_args):
        tensor.record_stream(side)
    with torch.cuda.stream(side):
        reverse_result = reverse(*reverse_args)
    forward_result = forward(*forward_args)
    main.wait_stream(side)
    for tensor in _tensors(reverse_result):
        tensor.record_stream(main)
    return forward_result, reverse_result


def _tensors(values) -> list[torch.Tensor]:
    return [v for v in values if isinstance(v, torch.Tensor) and v.is_cuda]
