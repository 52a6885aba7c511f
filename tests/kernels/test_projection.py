"""The GEMMs around the fused recurrences (rnnlab.kernels.projection): TF32 for fp32 on CUDA while
torch.backends.cudnn.allow_tf32 is on, as torch.nn's cuDNN RNNs do, with cuBLAS's setting restored after.
The switching and the autograd formulas are checked here on the CPU; that CUDA really computes in TF32 is
checked by the gpu-marked tests at the end (skipped without a CUDA device)."""

import contextlib
import inspect
import json
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from rnnlab.kernels import projection

from rnnlab.reference.matmul import project_inputs as reference_project_inputs


def _readings() -> list:
    """What a user's code can read of cuBLAS's fp32 setting, through either of torch's APIs ("raises"
    where torch refuses the legacy reading)."""
    readings = []
    for read in (
        lambda: torch.backends.cuda.matmul.fp32_precision,
        lambda: torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision,
    ):
        try:
            readings.append(read())
        except RuntimeError:
            readings.append("raises")
    return readings


# A caller's setting of cuBLAS's TF32, through the legacy API or the newer one. Each case runs in a fresh
# interpreter: torch's newer settings cannot be undone within one process, and would leak into other tests.
SETTINGS = {
    "untouched": "",
    "legacy off": "torch.backends.cuda.matmul.allow_tf32 = False",
    "legacy on": "torch.backends.cuda.matmul.allow_tf32 = True",
    "highest": "torch.set_float32_matmul_precision('highest')",
    "new ieee": "torch.backends.cuda.matmul.fp32_precision = 'ieee'",
    "new parent ieee": "torch.backends.fp32_precision = 'ieee'",
}
_PROBE = """
import json, torch
{readings}
{setting}
before = _readings()
inside = None
if {block}:
    from rnnlab.kernels import projection
    with projection.cublas_tf32():
        inside = _readings()
    try:
        with projection.cublas_tf32():
            raise KeyError("an error inside the block")
    except KeyError:
        pass
after = _readings()
torch.backends.fp32_precision = "tf32"  # a later change of the parent setting
print(json.dumps([before, inside, after, _readings()]))
"""


def _probe(setting: str, block: bool) -> subprocess.Popen:
    readings = inspect.getsource(_readings)
    code = _PROBE.format(readings=readings, setting=SETTINGS[setting], block=block)
    return subprocess.Popen([sys.executable, "-W", "ignore", "-c", code], stdout=subprocess.PIPE, text=True)


def test_cublas_tf32_puts_back_what_the_caller_set():
    """Inside the block cuBLAS may use TF32 and every reading says so (none raises where it did not
    before); after it, with or without an exception inside, every reading is what the caller set, and a
    later change of the parent setting reaches cuBLAS as it would have without the block."""
    probes = {(name, block): _probe(name, block) for name in SETTINGS for block in (True, False)}
    results = {}
    for key, probe in probes.items():
        out, _ = probe.communicate(timeout=120)
        assert probe.returncode == 0, key
        results[key] = json.loads(out)
    for name in SETTINGS:
        before, inside, after, later = results[name, True]
        _, _, _, later_without = results[name, False]
        assert inside[0] == "tf32", (name, inside)
        assert inside[1] in (True, "raises") and (inside[1] is True or before[1] == "raises"), (name, inside)
        assert after == before, (name, before, after)
        assert later == later_without, (name, later, later_without)


def test_cublas_tf32_nested_and_from_threads_puts_back_once():
    before = _readings()
    inside, release = threading.Barrier(3), threading.Event()
    seen = []

    def hold():
        with projection.cublas_tf32():
            inside.wait(timeout=10)
            release.wait(timeout=10)
            seen.append(torch.backends.cuda.matmul.fp32_precision)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for thread in threads:
        thread.start()
    with projection.cublas_tf32():
        inside.wait(timeout=10)  # all three blocks entered
        with projection.cublas_tf32():
            assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"  # the inner exit put nothing back
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"  # the threads are still inside
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == ["tf32", "tf32"]
    assert _readings() == before  # the last one out put it back


def _stand_in(dtype=torch.float32, device="cuda"):
    """What follows_cudnn_tf32 reads of a tensor, for a CUDA tensor on a machine without CUDA."""
    return SimpleNamespace(dtype=dtype, device=torch.device(device))


def test_tf32_only_for_fp32_on_cuda_under_the_cudnn_switch(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.delenv("RNNLAB_PROJECTION_TF32", raising=False)
    assert projection.follows_cudnn_tf32(_stand_in())
    assert not projection.follows_cudnn_tf32(_stand_in(device="cpu"))
    assert not projection.follows_cudnn_tf32(_stand_in(dtype=torch.bfloat16))
    assert not projection.follows_cudnn_tf32(_stand_in(dtype=torch.float16))
    monkeypatch.setenv("RNNLAB_PROJECTION_TF32", "0")
    assert not projection.follows_cudnn_tf32(_stand_in())
    monkeypatch.setenv("RNNLAB_PROJECTION_TF32", "1")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert not projection.follows_cudnn_tf32(_stand_in())


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("needs", ["all", "x", "weight"])
def test_tf32_projection_has_the_linear_gradients(monkeypatch, bias, needs):
    """The TF32 path's own autograd formulas (dx, dW, db) against F.linear's, on the CPU, where cuBLAS's
    setting changes nothing, so they must agree to rounding; the setting is back afterwards."""
    monkeypatch.setattr(projection, "follows_cudnn_tf32", lambda tensor: True)
    applied = []
    apply = projection._TF32Linear.apply
    monkeypatch.setattr(projection._TF32Linear, "apply", lambda *a: applied.append(1) or apply(*a))
    before = _readings()
    x = torch.randn(7, 3, 5, dtype=torch.float64)  # (T, B, I)
    w = torch.randn(12, 5, dtype=torch.float64)  # (G*H, I)
    b = torch.randn(12, dtype=torch.float64) if bias else None
    leaves = {"x": x, "weight": w, "bias": b}
    for name, leaf in leaves.items():
        if leaf is not None:
            leaf.requires_grad_(needs in ("all", name))
    dy = torch.randn(7, 3, 12, dtype=torch.float64)
    got = projection.project_inputs(x, w, b)
    want = F.linear(x, w, b)
    torch.testing.assert_close(got, want)
    wanted = [t for t in leaves.values() if t is not None and t.requires_grad]
    got_grads, want_grads = torch.autograd.grad(got, wanted, dy), torch.autograd.grad(want, wanted, dy)
    for g, w_ in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w_)
    assert applied  # the TF32 path ran, not the plain one
    assert _readings() == before


@pytest.mark.parametrize(
    "bias, needs",
    [(True, "all"), (True, "x"), (True, "weights"), (True, "biases"), (False, "all"), (False, "x")],
)
def test_both_directions_projected_into_one_buffer(monkeypatch, bias, needs):
    """project_both_directions (bidirectional layers on the triton backend): the two directions' GEMMs each
    write a half of one (2, T, B, G*H) buffer, with their own autograd formulas: values and gradients
    those of the two projections stacked, in the TF32 block (a no-op on the CPU) where it applies."""
    blocks = []
    monkeypatch.setattr(projection, "follows_cudnn_tf32", lambda tensor: True)
    monkeypatch.setattr(projection, "cublas_tf32", lambda: blocks.append(1) or contextlib.nullcontext())
    x = torch.randn(7, 3, 5, dtype=torch.float64, requires_grad=needs in ("all", "x"))
    weights = [
        torch.randn(12, 5, dtype=torch.float64, requires_grad=needs in ("all", "weights")) for _ in "01"
    ]
    biases = [torch.randn(12, dtype=torch.float64, requires_grad=needs in ("all", "biases")) for _ in "01"]
    biases = biases if bias else [None, None]
    got = projection.project_both_directions(x, weights, biases)
    want = torch.stack([F.linear(x, w, b) for w, b in zip(weights, biases, strict=True)])
    assert got.shape == (2, 7, 3, 12) and got.is_contiguous()
    torch.testing.assert_close(got, want)
    leaves = [t for t in (x, *weights, *biases) if t is not None and t.requires_grad]
    dy = torch.randn_like(want)
    for g, w_ in zip(
        torch.autograd.grad(got, leaves, dy), torch.autograd.grad(want, leaves, dy), strict=True
    ):
        torch.testing.assert_close(g, w_)
    assert len(blocks) == 2  # the forward's two GEMMs in one block, the backward's in another


def test_cpu_projection_is_the_reference_one():
    x, w, b = torch.randn(4, 2, 6), torch.randn(8, 6), torch.randn(8)
    assert torch.equal(projection.project_inputs(x, w, b), reference_project_inputs(x, w, b))


def _tf32_or_fp32(got, tf32, exact, name):
    """``got`` is the TF32 product: within a hundredth of the TF32 reference's distance from the fp32 one
    (not to the bit: the same product may be summed in another order, e.g. dW as dy.T @ x here and as
    (x.T @ dy).T in autograd)."""
    from_tf32, from_fp32 = (got - tf32).abs().max().item(), (got - exact).abs().max().item()
    assert from_fp32 > 0 and from_tf32 <= 0.01 * from_fp32, (name, from_tf32, from_fp32)


def _matmuls(allow_tf32: bool, fn):
    """``fn()`` with cuBLAS's TF32 set through the legacy flag (which keeps both of torch's readings in
    step), then the flag as it was."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        return fn()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.gpu
@pytest.mark.parametrize("cudnn_tf32", [True, False], ids=["cudnn-tf32-on", "cudnn-tf32-off"])
def test_cuda_fp32_gemms_follow_the_cudnn_switch(monkeypatch, cudnn_tf32):
    """On CUDA, with cuDNN's switch on, the projection, its gradients and dW_hh are cuBLAS's TF32
    products (``_tf32_or_fp32``); off, the fp32 ones, to the bit (the same calls). cuBLAS's own setting is
    the caller's afterwards."""
    from rnnlab.kernels import common

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", cudnn_tf32)
    monkeypatch.delenv("RNNLAB_PROJECTION_TF32", raising=False)
    before = _readings()
    x = torch.randn(64, 8, 256, device="cuda", requires_grad=True)  # (T, B, I)
    w = torch.randn(512, 256, device="cuda", requires_grad=True)  # (G*H, I)
    b = torch.randn(512, device="cuda", requires_grad=True)
    dy = torch.randn(64, 8, 512, device="cuda")
    out = torch.randn(64, 8, 128, device="cuda")  # (T, B, H) for dW_hh, (G*H, H)
    h0 = torch.randn(8, 128, device="cuda")

    def gemms(fn):  # dW_hh through common, whose TF32 block RNNLAB_PROJECTION_TF32=0 turns off below
        y = fn(x, w, b)
        return [
            y,
            *torch.autograd.grad(y, [x, w, b], dy)[:2],
            common.recurrent_weight_grad(dy, out, h0, None, False),
        ]

    got = gemms(projection.project_inputs)
    assert _readings() == before
    monkeypatch.setenv("RNNLAB_PROJECTION_TF32", "0")  # the references: cuBLAS's setting alone decides
    exact = _matmuls(False, lambda: gemms(F.linear))
    tf32 = _matmuls(True, lambda: gemms(F.linear))
    for name, g, t, e in zip(["out", "dx", "dW_ih", "dW_hh"], got, tf32, exact, strict=True):
        if cudnn_tf32:
            _tf32_or_fp32(g, t, e, name)
        else:
            assert torch.equal(g, e), name


NEW_API = {
    "rnn ieee": "torch.backends.cudnn.rnn.fp32_precision = 'ieee'",
    "all ieee": "torch.backends.fp32_precision = 'ieee'",
    "cudnn ieee, rnn tf32": (
        "torch.backends.cudnn.fp32_precision = 'ieee'; torch.backends.cudnn.rnn.fp32_precision = 'tf32'"
    ),
}


@pytest.mark.parametrize("setting", list(NEW_API))
def test_tf32_switch_set_through_torchs_newer_api(setting):
    """A caller that sets TF32 through torch's newer API (after which reading the legacy
    ``torch.backends.cudnn.allow_tf32`` raises) gets the precision cuDNN's RNNs use,
    ``torch.backends.cudnn.rnn.fp32_precision`` (which a global setting reaches from torch 2.13 on), not
    an error. In a fresh interpreter: that API's settings cannot be undone within one process."""
    script = (
        f"import torch\n{NEW_API[setting]}\nfrom rnnlab.kernels import common\n"
        "print(common.dot_precision(torch.float32), torch.backends.cudnn.rnn.fp32_precision)\n"
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    precision, rnn = done.stdout.split()
    assert precision == ("tf32" if rnn == "tf32" else "tf32x3"), (precision, rnn)
    if setting == "cudnn ieee, rnn tf32" or torch.__version__ >= (2, 13):
        assert precision == ("tf32" if setting == "cudnn ieee, rnn tf32" else "tf32x3")
