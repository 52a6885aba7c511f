"""What the three fused recurrences share: availability, dtypes, dot precision, buffers, input checks and the
recurrent weight gradient. How they are launched (paths, tiles, grid barrier): ``launch``. Each cell module
registers its launchers as torch.library custom ops (``rnnlab::<cell>_fwd`` / ``_bwd``, with fake functions
and autograd), so torch.compile traces them with fullgraph=True; eager calls take the same implementations
without torch.library's dispatch (``eager_autograd``).

This module does not import Triton at import time, so ``rnnlab.kernels.supports``/``available`` work anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import re

import torch
from torch._subclasses.fake_tensor import is_fake

from rnnlab.reference import common as reference_common

MAX_HIDDEN = 16384  # int32 offsets into W_hh (G*H*H) stay below 2^31 up to here
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CELLS = ("lstm", "gru", "rnn")
GATES = {"lstm": 4, "gru": 3, "rnn": 1}
NONLINEARITIES = ("tanh", "relu", "sigmoid")

# Test hook: allocate every output and scratch buffer filled with NaN, so an element the kernel forgets to
# write fails the comparison instead of passing by luck. Off in normal use (torch.empty).
POISON = False


MIN_TRITON = (3, 3)  # Triton 3.2 (torch 2.6's) cannot compile the kernels: it takes no tuple arguments


@functools.cache
def triton_problem() -> str | None:
    """Why the kernels cannot be compiled here (None: they can): Triton missing, or older than
    ``MIN_TRITON``. Compiled for sm_90, Triton 3.3 to 3.9 all build every kernel; Triton 3.2 builds none
    (experiments/kernels/README.md, "Other GPUs and Triton versions")."""
    try:
        import triton
        import triton.language  # noqa: F401
    except ImportError:
        return "the triton package is not installed"
    version = tuple(int(part) for part in re.findall(r"\d+", triton.__version__)[:2])
    if version < MIN_TRITON:
        wanted = ".".join(map(str, MIN_TRITON))
        return f"triton {triton.__version__} is too old: the kernels need triton >= {wanted} (torch >= 2.7)"
    return None


def gpu_problem() -> str | None:
    """Why the kernels are not an automatic choice on this build's GPUs (None: they are): Triton's
    problem (``triton_problem``), or a ROCm build of torch, whose AMD GPUs the kernels compile for (MI300)
    but have never run on."""
    problem = triton_problem()
    if problem is None and torch.version.hip is not None:
        problem = "this is a ROCm build of torch, and the kernels have never run on an AMD GPU"
    return problem


def interpreted() -> bool:
    """True when Triton runs kernels with its numpy interpreter (TRITON_INTERPRET=1): correct, slow."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def fast_math() -> bool:
    """FAST of the forward kernels (``device.sigmoid``): the activations' exponential and reciprocal as one
    approximate PTX instruction each. On when the kernels are compiled for an NVIDIA GPU (not under the
    interpreter, which cannot run PTX, nor on ROCm); ``RNNLAB_FAST_MATH=0`` turns it off for a side-by-side
    run. The backward kernels recompute what they need with the ordinary lowering."""
    return not interpreted() and torch.version.hip is None and os.environ.get("RNNLAB_FAST_MATH", "1") != "0"


def available() -> bool:
    """Triton importable and recent enough (``triton_problem``), and a CUDA device present or the
    interpreter switched on."""
    return triton_problem() is None and (torch.cuda.is_available() or interpreted())


def supports(cell: str, hidden_size: int, dtype: torch.dtype, device: torch.device | str) -> bool:
    """Whether the compiled fused path runs this configuration: what ``backend="auto"`` should ask.

    True for cell in {"lstm", "gru", "rnn"}, 1 <= hidden_size <= MAX_HIDDEN, dtype fp32/bf16/fp16, on a CUDA
    device with a Triton that can compile the kernels (``triton_problem``). A CPU device gives False even
    under TRITON_INTERPRET=1: the interpreter runs the kernels correctly (that is how the tests check them)
    but far too slowly to be an automatic choice; ask for the triton backend explicitly to use it. So does
    an AMD GPU (``gpu_problem``; experiments/kernels/README.md, "Other GPUs and Triton versions"), where
    backend="triton" still runs them.
    """
    device = torch.device(device)
    return (
        cell.lower() in CELLS
        and 1 <= hidden_size <= MAX_HIDDEN
        and dtype in DTYPES
        and device.type == "cuda"
        and gpu_problem() is None
        and torch.cuda.is_available()
    )


def triton_next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def dot_precision(dtype: torch.dtype) -> str:
    """``input_precision`` for tl.dot on fp32 operands: the precision contract of torch.nn's GPU RNNs.

    ``torch.backends.cudnn.allow_tf32`` (True by default; read by ``cudnn_rnn_tf32``) lets cuDNN run fp32
    RNNs on TF32 tensor cores; the fused kernels follow the same switch: "tf32" when it is on, "tf32x3"
    when it is off (each product as three TF32 products, hi*hi + hi*lo + lo*hi: about fp32's own
    accuracy, still on tensor cores). The state and accumulation are fp32 either way. bf16/fp16 operands
    ignore it. (The interpreter computes dots exactly.)"""
    if dtype != torch.float32:
        return "ieee"
    return "tf32" if cudnn_rnn_tf32() else "tf32x3"


def backward_weight(w_hh: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(w, W_T): the recurrent weight as the backward kernels read it. fp32: its transpose, ([2,] H, G*H)
    contiguous, and W_T True; there the product dG @ W_hh reduces along each column of W_hh, and a TF32
    tensor-core product reads its operand from shared memory with ldmatrix only along the reduced axis:
    compiled for sm_90, reading W_hh as stored took one scalar load per element (LSTM H = 128: 258 a warp
    a step, 2 with the transpose; experiments/kernels/README.md). bf16/fp16 transpose as they load
    (ldmatrix.trans) and keep W_hh as it is. ``RNNLAB_BACKWARD_WT=0``: fp32 as stored too."""
    if backward_transposed(w_hh.dtype):
        return w_hh.transpose(-1, -2).contiguous(), True
    return w_hh.contiguous(), False


def backward_transposed(dtype: torch.dtype) -> bool:
    """Whether the backward kernels read W_hh transposed (W_T) for this dtype: ``backward_weight``."""
    return dtype == torch.float32 and os.environ.get("RNNLAB_BACKWARD_WT", "1") != "0"


def cudnn_rnn_tf32() -> bool:
    """Whether torch.nn's cuDNN RNNs may use TF32 now: ``torch.backends.cudnn.allow_tf32``, or, once the
    caller has set TF32 through torch's newer API (``torch.backends[.cudnn[.rnn]].fp32_precision``, after
    which reading the legacy flag raises), ``torch.backends.cudnn.rnn.fp32_precision == "tf32"``."""
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:  # "mix of the legacy and new APIs": the new one is the caller's
        return torch.backends.cudnn.rnn.fp32_precision == "tf32"


def device_guard(tensor: torch.Tensor):
    """Launch on the tensor's CUDA device (not the current one); nothing to do elsewhere."""
    if tensor.device.type == "cuda":
        return torch.cuda.device(tensor.device)
    return contextlib.nullcontext()


def new_buffer(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An output or scratch buffer the kernel fills: uninitialised, or NaN under the POISON test hook."""
    if POISON:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


def lengths_arg(lengths: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
    """(B,) int32 on the kernel's device, or None."""
    reference_common.check_lengths(lengths, batch)  # its values are not read here: T is not known
    if lengths is None:
        return None
    return lengths.to(device=device, dtype=torch.int32).contiguous()


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def recurrent_weight_grad(
    d_gates: torch.Tensor,
    out: torch.Tensor,
    h0: torch.Tensor,
    lengths: torch.Tensor | None,
    reverse: bool,
    into: torch.Tensor | None = None,
) -> torch.Tensor:
    """dW_hh = sum_t dG_t^T h_entering(t): (G*H, H), two deterministic GEMMs, without materialising the
    (T, B, H) entering states. ``into``: a contiguous (G*H, H) tensor to write it in (rows of a larger
    gradient), returned. Both directions stacked (out (2, T, B, H), ``stacked_directions``): (2, G*H, H),
    each direction's (``into`` (2, G*H, H), each direction's part contiguous).

    A row's valid steps are a prefix t < length and dG is zero on the others, so the state entering a valid
    step is the output of the step processed just before (t - 1 forward, t + 1 reverse), except at the
    row's first processed step (t = 0 forward, t = length - 1 reverse), which starts from h0. ``out`` is
    zero past each length, so the neighbour term adds nothing at that first step."""
    if out.dim() == 4:  # both directions stacked (``stacked_directions``): (2, G*H, H)
        if into is None:
            into = d_gates.new_empty(out.shape[0], d_gates.shape[-1], out.shape[-1])
        for d in range(out.shape[0]):
            recurrent_weight_grad(d_gates[d], out[d], h0[d], lengths, d == 1, into=into[d])
        return into
    steps, batch, hidden = out.shape
    gh = d_gates.shape[-1]
    if steps == 0:  # no step: the weight had no effect
        return h0.new_zeros(gh, hidden) if into is None else into.zero_()
    if reverse:
        pair = d_gates[:-1].reshape(-1, gh).t(), out[1:].reshape(-1, hidden)  # dG_t^T out_{t+1}
        if lengths is None:
            first = d_gates[steps - 1]  # (B, G*H)
        else:
            last = (lengths.long() - 1).clamp_min(0)  # rows of length 0 have dG = 0 everywhere
            first = d_gates[last, torch.arange(batch, device=out.device)]
    else:
        pair = d_gates[1:].reshape(-1, gh).t(), out[:-1].reshape(-1, hidden)  # dG_t^T out_{t-1}
        first = d_gates[0]
    from .projection import products_like_cudnn  # (imported here: projection imports this module)

    with products_like_cudnn(d_gates):  # fp32: TF32 where torch.nn's cuDNN RNNs would use it
        shifted = torch.mm(*pair) if into is None else torch.mm(*pair, out=into)
        return shifted.addmm_(first.t(), h0)  # in place: one (G*H, H) result alive, not three


def eager_autograd(op, impl, setup_context, backward):
    """A callable that runs a recurrence's forward ``impl`` with ``setup_context``/``backward`` as its
    autograd: through ``op`` (the torch.library custom op registered with them) while torch.compile traces
    it, and otherwise as a plain torch.autograd.Function (or ``impl`` itself when no gradient is needed).
    Same implementation, same formulas; the eager call skips torch.library's dispatch, about a quarter of
    a forward+backward's host time (experiments/kernels/host_overhead.py)."""

    class Eager(torch.autograd.Function):
        # forward(ctx, ...) rather than a separate setup_context: Function.apply then skips binding the
        # arguments through inspect.signature on every call
        @staticmethod
        def forward(ctx, *inputs):
            output = impl(*inputs)
            setup_context(ctx, inputs, output)
            return output

        @staticmethod
        @reference_common.first_derivatives_only  # create_graph=True: first derivatives; a second one raises
        def backward(ctx, *grads):
            return backward(ctx, *grads)

    def call(*inputs):
        if tracing(inputs[0]):
            return op(*inputs)
        if needs_grad(*(t for t in inputs if isinstance(t, torch.Tensor))):
            return Eager.apply(*inputs)
        return impl(*inputs)

    return call


def op_or_impl(op, impl, tensor: torch.Tensor):
    """``op`` (a torch.library custom op) while torch.compile traces ``tensor``, else its implementation
    ``impl``."""
    return op if tracing(tensor) else impl


def tracing(tensor: torch.Tensor) -> bool:
    """True while torch.compile (or export) traces: inside Dynamo, or handed a fake tensor (bare or wrapped
    in a functional tensor), as AOTAutograd hands a backward it traces. The second test is needed: torch
    2.11 leaves ``torch.compiler.is_compiling()`` False while AOTAutograd traces a custom op's registered
    backward, and a kernel launched there on fake tensors fails ("Cannot access data pointer")."""
    return torch.compiler.is_compiling() or is_fake(tensor)


def no_gradient_for(ctx, *saved_outputs: torch.Tensor) -> None:
    """In a custom op's setup_context: the outputs that exist only to be saved for backward (gates, cell
    states: (T, B, 4H) and the like) take no gradient, and an output nobody used reaches backward as None.

    Without this, autograd hands backward a zero tensor of each unused output's size (materialized
    gradients): for LSTM B=256 T=128 H=1024 fp32 a 512 MB and a 128 MB block of zeros, alive through the
    backward kernel beside the saved gates and their gradients."""
    ctx.mark_non_differentiable(*saved_outputs)
    ctx.set_materialize_grads(False)


def gradient_buffer(saved: torch.Tensor) -> torch.Tensor:
    """Where a backward kernel writes the gradient of a saved (T, B, G*H) tensor of the same shape: into
    ``saved`` itself when this backward is the last use of the graph (eager, retain_graph=False: autograd
    frees the saved tensors afterwards anyway), as cuDNN writes its gradients into its reserve space;
    otherwise (retain_graph=True, create_graph=True, or while torch.compile traces the backward) into a
    new buffer. Saves one buffer of the saved tensor's size at the backward's peak."""
    if _graph_used_once() and not tracing(saved):
        return saved
    return new_buffer(saved.shape, saved.dtype, saved.device)


def _graph_used_once() -> bool:
    """True inside an eager backward pass that will free its graph (retain_graph=False). Reads the autograd
    engine's flag through the private hook AOTAutograd uses for the same purpose; where that hook is missing
    or there is no running backward pass, False (the safe answer: a new buffer)."""
    keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)
    if keep_graph is None:
        return False
    try:
        return not keep_graph()
    except RuntimeError:
        return False


def output_gradient_arg(d_out: torch.Tensor | None, plan) -> torch.Tensor | None:
    """The output gradient as a backward kernel reads it: contiguous (T, B, H), or ([2,] T, B, H) for both
    directions with a launch each; for both in one launch (``plan.directions`` 2) as (T, B, 2, H), the
    layout of a bidirectional layer's own (T, B, 2H) output gradient, which then arrives as a permuted view
    of it and is read in place (``device.both_directions_gradient``), no copy."""
    if d_out is None:
        return None
    if plan.directions != 2:
        return d_out.contiguous()
    return d_out.permute(1, 2, 0, 3).contiguous()  # a view where it already is (T, B, 2, H)


def fp32_state(state: torch.Tensor, slots: int = 0) -> torch.Tensor:
    """A contiguous fp32 copy of a (B, H) state, which a kernel carries and overwrites: one conversion,
    whatever the state's dtype. With ``slots``, a (slots, B, H) buffer holding the state in slot 0 and
    leaving the others for the kernel to write (NaN under POISON). Both directions' states stacked (2, B, H):
    (2, slots, B, H), each direction's slots together."""
    if slots:
        buf = new_buffer((*state.shape[:-2], slots, *state.shape[-2:]), torch.float32, state.device)
        buf[..., 0, :, :].copy_(state)
        return buf
    return torch.empty(state.shape, dtype=torch.float32, device=state.device).copy_(state)


def fp32_gradient(grad: torch.Tensor | None, shape, device: torch.device) -> torch.Tensor:
    """The fp32 (B, H) buffer a backward kernel starts a state gradient from and overwrites: a copy of
    ``grad``, or zeros where the final state took no gradient (None)."""
    buf = torch.empty(shape, dtype=torch.float32, device=device)
    return buf.zero_() if grad is None else buf.copy_(grad)


def in_dtype(buf: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A kernel's fp32 state buffer handed back in ``dtype``: for fp32 the buffer itself, no copy, else
    converted. A slot of a (2, B, H) scratch comes back detached from it (not a view), so that autograd
    lets callers modify the state in place, as torch.nn's; contiguous (a slot of both directions' (2, 2, B,
    H) scratch is strided: copied, 2 * B * H elements)."""
    return buf.to(dtype).detach().contiguous()


def overwrite_allowed(gx: torch.Tensor, overwrite_gx: bool, save: bool) -> bool:
    """Whether the forward writes the gates it saves over gx: asked for (``overwrite_gx``), something to save,
    and not while torch.compile traces (the registered op declares no mutation). ``overwrite_gx`` is for a gx
    the caller computed and does not read again: a leaf that requires grad is refused (its value is the
    caller's, and autograd would reject the in-place write only later, if at all)."""
    if overwrite_gx and gx.is_leaf and gx.requires_grad:
        raise ValueError(
            "overwrite_gx=True would overwrite gx, a leaf tensor that requires grad; it is for a gx the "
            "caller computed and does not read again (pass overwrite_gx=False)"
        )
    return overwrite_gx and save and not tracing(gx)


def never_overwriting(name: str, impl):
    """``impl`` as the registered op ``name`` runs it: refusing overwrite_gx=True with a clear error. The op
    declares no mutation, and torch.library refuses an output that is one of its inputs (with a message
    about aliasing); the callers pass True only on the eager path (``common.eager_autograd``)."""
    position = list(inspect.signature(impl).parameters).index("overwrite_gx")

    @functools.wraps(impl)  # torch.library reads the schema from impl's signature through __wrapped__
    def op(*args, **kwargs):
        overwrite = kwargs["overwrite_gx"] if "overwrite_gx" in kwargs else args[position]
        if overwrite:
            raise ValueError(
                f"{name} got overwrite_gx=True: the registered op never writes over gx (it declares no "
                "mutation); pass overwrite_gx=False, or call the recurrence function, which overwrites on "
                "eager calls only"
            )
        return impl(*args, **kwargs)

    return op


def stacked_directions(gx: torch.Tensor, reverse: bool) -> int:
    """2 when gx holds both directions of a bidirectional layer, stacked (2, T, B, G*H): direction 0 runs
    forward in time, direction 1 in reverse, in one call (and one launch where ``launch.plan`` says so);
    ``reverse`` must then be False. 1 for a single direction's (T, B, G*H)."""
    if gx.dim() != 4:
        return 1
    reference_common.check_both_directions(reverse)
    return 2


def check_inputs(
    gx: torch.Tensor, w_hh: torch.Tensor, h0: torch.Tensor, gates: int, c0: torch.Tensor | None = None
) -> int:
    """Shape/device/dtype checks shared by the cells (``rnnlab.reference.common.check_inputs``, with the
    kernels' dtypes); returns H. ``c0``: LSTM's second state. Both directions stacked
    (``stacked_directions``): gx (2, T, B, G*H), w_hh (2, G*H, H), states (2, B, H)."""
    states = {"initial state": h0, **({} if c0 is None else {"initial state c0": c0})}
    return reference_common.check_inputs(gx, w_hh, states, gates, dtypes=DTYPES)
