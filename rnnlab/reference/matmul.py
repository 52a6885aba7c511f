"""The one small product every recurrent step makes: ``addend + h @ W.T``.

A recurrence multiplies the same weight T times by a small (B, H) state. On the CPU in fp32, oneDNN can
reorder ("pack") the weight once into its blocked layout, which makes each of the T products 2-3x faster
than ``torch.addmm`` (measured here: 440 against 170 GFLOP/s at B=64, H=512). Everywhere else (CUDA,
float64, bf16/fp16, oneDNN disabled) the product is a plain ``torch.addmm``. Both give the same result to
rounding; which one runs is an engine choice, not a change of the specification.
"""

from __future__ import annotations

import torch

from .common import first_derivatives_only


def _onednn_usable(weight: torch.Tensor) -> bool:
    return (
        weight.device.type == "cpu"
        and weight.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


class StepMatmul:
    """``step(h, addend) = addend + h @ weight.T`` for a weight reused over many steps.

    weight: (N, K); h: (B, K); addend: (B, N), or (N,) broadcast over the batch, or None.
    """

    def __init__(self, weight: torch.Tensor, batch_size: int) -> None:
        self.weight_t = weight.t()
        self.packed = None
        if _onednn_usable(weight) and batch_size > 0:
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), batch_size)
            except RuntimeError:  # an older oneDNN build without the reorder: fall back to addmm
                self.packed = None

    def __call__(self, h: torch.Tensor, addend: torch.Tensor | None = None) -> torch.Tensor:
        if self.packed is not None:
            if addend is None:
                return torch.ops.mkldnn._linear_pointwise(h, self.packed, None, "none", [], "")
            if addend.dim() == 1:
                return torch.ops.mkldnn._linear_pointwise(h, self.packed, addend, "none", [], "")
            return torch.ops.mkldnn._linear_pointwise.binary(h, addend, self.packed, None, "add")
        if addend is None:
            return h @ self.weight_t
        return torch.addmm(addend, h, self.weight_t)


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDNNLinear(torch.autograd.Function):
    """y = x @ W.T + b through oneDNN. On this project's CPUs oneDNN runs tall GEMMs (many rows, small
    inner dimension: the input projection and its dx) about twice as fast as ATen's default BLAS; the weight
    gradient (a long reduction over all T*B rows) is no faster there, so it stays a plain mm."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn_linear(x, weight, bias)

    @staticmethod
    @first_derivatives_only
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dx = _onednn_linear(dy, weight.t(), None) if ctx.needs_input_grad[0] else None
        dw = dy.t() @ x if ctx.needs_input_grad[1] else None
        db = dy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def project_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The input part of the gates for every step at once: (T, B, I) -> (T, B, G*H), one GEMM."""
    usable = not torch.compiler.is_compiling() and _onednn_usable(weight)  # compiled: the compiler's GEMM
    if not usable or x.dtype != weight.dtype or x.shape[0] * x.shape[1] == 0:
        return torch.nn.functional.linear(x, weight, bias)
    steps, batch, features = x.shape
    flat = x.reshape(steps * batch, features)  # (T*B, I)
    return _OneDNNLinear.apply(flat, weight, bias).view(steps, batch, -1)
