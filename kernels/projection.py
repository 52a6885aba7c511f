"""The fp32 GEMMs around a fused recurrence, on the precision contract of torch.nn's cuDNN RNNs.

While ``torch.backends.cudnn.allow_tf32`` is on (torch's default), cuDNN runs *every* product of an fp32 RNN
on TF32 tensor cores: the recurrence and the input projection with its gradients alike, whatever
``torch.backends.cuda.matmul`` says (cuBLAS's own TF32 switch, off by default). The fused kernels follow
the cuDNN switch (``common.dot_precision``). This module makes the GEMMs outside them follow it too:

- ``project_inputs(x, W_ih, b)``: gx = x @ W_ih.T + b for all steps, and its backward (dx, dW_ih, db);
- ``products_like_cudnn(tensor)``: a context for the recurrent weight's gradient
  (``common.recurrent_weight_grad``).

On a CUDA fp32 tensor with the cuDNN switch on, these GEMMs run with cuBLAS's TF32 allowed for their
duration and the caller's setting restored afterwards (``cublas_tf32``). Anywhere else (CPU, bf16/fp16,
the switch off, inside torch.compile's tracing, where the compiled graph follows torch's own matmul
setting) they are the plain products. ``RNNLAB_PROJECTION_TF32=0`` keeps them in full fp32, for
comparisons.

Why it matters: these GEMMs are as large as the recurrence's own products (LSTM B=256 T=128 I=H=1024: four
of 275 GFLOP each, forward and backward), and an H100 runs fp32 without tensor cores at about an eighth of
its TF32 rate. cuDNN's fp32 forward of that row (4.58 ms in run 4, its projection included) is shorter than
the projection alone takes in full fp32 at that rate.

The switch is process-wide: while one of these GEMMs runs, an fp32 matmul on another host thread that did
not ask for TF32 would get it too. Calls of this module nest and overlap safely (a count under a lock; the
last one out restores the setting). One setting comes back subtly changed: a caller who set cuBLAS's
``fp32_precision`` to the same value as its parent ``torch.backends.fp32_precision`` finds it inheriting
from the parent again (torch cannot tell the two apart; ``_put_back``).
"""

from __future__ import annotations

import contextlib
import os
import threading

import torch

from rnnlab.reference.common import first_derivatives_only
from rnnlab.reference.matmul import project_inputs as plain_project_inputs

from .common import cudnn_rnn_tf32, tracing

_lock = threading.Lock()
_users = 0  # blocks inside cublas_tf32 now
_found = None  # what the first one in found (``_allow_tf32``), for the last one out (``_put_back``)


def _has_new_api() -> bool:
    try:
        torch.backends.cuda.matmul.fp32_precision  # noqa: B018
    except AttributeError:  # torch before 2.9: only the legacy flag
        return False
    return True


_NEW_API = _has_new_api()


def _allow_tf32():
    """Let cuBLAS use TF32; return what is needed to put the caller's setting back, or None if TF32 was
    allowed already.

    torch (2.9 on) keeps two readings of this setting: the legacy ``allow_tf32`` flag (with
    ``get_float32_matmul_precision``) and the newer ``fp32_precision``, and reading the legacy one raises
    once they disagree. The legacy setter writes both, so it is used whenever the legacy reading works:
    inside the block both readings say TF32, and no other thread's read of either raises. Only where the
    caller's own setting already makes the legacy reading raise is the newer one written alone."""
    matmul = torch.backends.cuda.matmul
    if not _NEW_API:
        if matmul.allow_tf32:
            return None
        matmul.allow_tf32 = True
        return (None, False, None)
    precision = matmul.fp32_precision
    if precision == "tf32":
        return None
    try:
        legacy = matmul.allow_tf32
    except RuntimeError:  # the caller mixed torch's two APIs: leave the legacy flag as it is
        legacy = None
    found = (precision, legacy, getattr(torch.backends, "fp32_precision", "none"))  # the parent setting
    if legacy is None:
        matmul.fp32_precision = "tf32"
    else:
        matmul.allow_tf32 = True
    return found


def _put_back(found) -> None:
    """Undo ``_allow_tf32``: the legacy flag as it was, then the newer setting. A setting that read the
    same as its parent, ``torch.backends.fp32_precision``, is set back to inherit from it ("none"), so
    that a later change of the parent still reaches cuBLAS; torch cannot tell us whether the caller had
    instead set the same value on cuBLAS itself (then the parent's later changes reach it, which they
    would not have)."""
    precision, legacy, parent = found
    matmul = torch.backends.cuda.matmul
    if legacy is not None:
        matmul.allow_tf32 = legacy
    if not _NEW_API:
        return
    target = "none" if precision == parent != "none" else precision
    if target == "none" or matmul.fp32_precision != target:
        matmul.fp32_precision = target


class _CublasTF32:
    """The context ``cublas_tf32()`` returns (a class, not a generator: a few µs less host time a call)."""

    def __enter__(self) -> None:
        global _users, _found
        with _lock:
            if _users == 0:
                _found = _allow_tf32()
            _users += 1

    def __exit__(self, *exc_info) -> None:
        global _users
        with _lock:
            _users -= 1
            if _users == 0 and _found is not None:
                _put_back(_found)


_CUBLAS_TF32 = _CublasTF32()


def cublas_tf32() -> _CublasTF32:
    """A context in which cuBLAS may use TF32 for fp32 matmuls. On exit (exceptions included) the last
    block out puts back the setting the first one in found, so that the caller's later reads through
    either of torch's TF32 APIs see what they set (``_allow_tf32``, ``_put_back``)."""
    return _CUBLAS_TF32


def follows_cudnn_tf32(tensor: torch.Tensor) -> bool:
    """Whether the GEMMs on ``tensor`` run in TF32 here: fp32 on CUDA, cuDNN's RNNs allowed TF32
    (``common.cudnn_rnn_tf32``), not while torch.compile traces, and not turned off by
    ``RNNLAB_PROJECTION_TF32=0``."""
    return (
        tensor.dtype == torch.float32
        and tensor.device.type == "cuda"
        and not tracing(tensor)  # first: torch.compile's graph is left to its own matmul setting
        and cudnn_rnn_tf32()
        and os.environ.get("RNNLAB_PROJECTION_TF32", "1") != "0"
    )


def products_like_cudnn(tensor: torch.Tensor):
    """A context for fp32 GEMMs on ``tensor``'s device: ``cublas_tf32()`` where ``follows_cudnn_tf32``,
    otherwise nothing."""
    return cublas_tf32() if follows_cudnn_tf32(tensor) else contextlib.nullcontext()


class _TF32Linear(torch.autograd.Function):
    """y = x @ W.T + b, with the forward's GEMM and the backward's two (dx = dy @ W, dW = dy.T @ x) inside
    ``cublas_tf32``. x: (N, I), W: (G*H, I), b: (G*H,) or None."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        with cublas_tf32():
            return torch.nn.functional.linear(x, weight, bias)

    @staticmethod
    @first_derivatives_only
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        with cublas_tf32():
            dx = dy @ weight if ctx.needs_input_grad[0] else None
            dw = dy.t() @ x if ctx.needs_input_grad[1] else None
        db = dy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def project_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The input part of the gates for every step at once, (T, B, I) -> (T, B, G*H), one GEMM: as
    ``rnnlab.reference.matmul.project_inputs``, in TF32 where ``follows_cudnn_tf32(x)``."""
    if not follows_cudnn_tf32(x) or weight.dtype != x.dtype or x.numel() == 0:
        return plain_project_inputs(x, weight, bias)
    steps, batch, features = x.shape
    flat = x.reshape(steps * batch, features)  # (T*B, I)
    return _TF32Linear.apply(flat, weight, bias).view(steps, batch, -1)  # (T, B, G*H)


class _BothDirections(torch.autograd.Function):
    """gx of both directions of a bidirectional layer, (2, N, G*H): x @ W_d.T + b_d for d = 0, 1, each GEMM
    writing its own half of one buffer; backward dx = dy_0 @ W_0 + dy_1 @ W_1, dW_d = dy_d.T @ x, db_d = the
    sum of dy_d. x: (N, I), the weights (G*H, I), the biases (G*H,) or None. Its GEMMs inside
    ``cublas_tf32`` where ``follows_cudnn_tf32(x)``."""

    @staticmethod
    def forward(ctx, x, w_0, w_1, b_0, b_1):
        ctx.save_for_backward(x, w_0, w_1)
        ctx.has_bias = b_0 is not None
        gx = x.new_empty(2, x.shape[0], w_0.shape[0])
        with products_like_cudnn(x):
            for half, w, b in ((gx[0], w_0, b_0), (gx[1], w_1, b_1)):
                torch.mm(x, w.t(), out=half) if b is None else torch.addmm(b, x, w.t(), out=half)
        return gx

    @staticmethod
    @first_derivatives_only
    def backward(ctx, dy):
        x, w_0, w_1 = ctx.saved_tensors
        need = ctx.needs_input_grad
        dx = dw_0 = dw_1 = db_0 = db_1 = None
        with products_like_cudnn(x):
            if need[0]:
                dx = torch.mm(dy[0], w_0).addmm_(dy[1], w_1)
            if need[1]:
                dw_0 = dy[0].t() @ x
            if need[2]:
                dw_1 = dy[1].t() @ x
        if ctx.has_bias:
            db_0 = dy[0].sum(0) if need[3] else None
            db_1 = dy[1].sum(0) if need[4] else None
        return dx, dw_0, dw_1, db_0, db_1


def project_both_directions(x: torch.Tensor, weights: list, biases: list) -> torch.Tensor:
    """The input part of the gates of both directions of a bidirectional layer, (T, B, I) -> (2, T, B, G*H),
    stacked as the kernels take them (``rnnlab.kernels``): each direction's GEMM writes its half of the
    result, with no stacked copy beside the two (``_BothDirections``). ``weights``: the two W_ih (G*H, I);
    ``biases``: the two biases (G*H,) or None. In TF32 where ``follows_cudnn_tf32(x)``; while torch.compile
    traces, the two projections and ``torch.stack``."""
    steps, batch, features = x.shape
    if tracing(x) or x.numel() == 0:
        return torch.stack([project_inputs(x, w, b) for w, b in zip(weights, biases, strict=True)])
    flat = x.reshape(steps * batch, features)
    return _BothDirections.apply(flat, *weights, *biases).view(2, steps, batch, -1)
