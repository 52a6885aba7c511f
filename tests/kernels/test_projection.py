"""The GEMMs around the fused recurrences (rnnlab.kernels.projection): TF32 for fp32 on CUDA while
torch.backends.cudnn.allow_tf32 is on, as torch.nn's cuDNN RNNs do, with cuBLAS's setting restored after.
The switching and the autograd formulas are checked here on the CPU; that CUDA really computes in TF32 is
checked by the gpu-marked tests at the end (skipped without a CUDA device)."""

import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from rnnlab.kernels import projection

from rnnlab import LSTM
from rnnlab.reference.matmul import project_inputs as reference_project_inputs


def _readings() -> tuple:
    """What a user's code can read of cuBLAS's fp32 setting, through either of torch's APIs."""
    matmul = torch.backends.cuda.matmul
    return matmul.fp32_precision, matmul.allow_tf32, torch.get_float32_matmul_precision()


@pytest.fixture
def restore_matmul_setting():
    before = torch.backends.cuda.matmul.fp32_precision
    yield
    torch.backends.cuda.matmul.fp32_precision = before


LEGACY_OR_NEW = {
    "untouched": lambda: None,
    "legacy on": lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
    "legacy off": lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", False),
    "new ieee": lambda: setattr(torch.backends.cuda.matmul, "fp32_precision", "ieee"),
}


@pytest.mark.parametrize("setting", list(LEGACY_OR_NEW))
def test_cublas_tf32_restores_what_the_caller_set(restore_matmul_setting, setting):
    torch.backends.cuda.matmul.fp32_precision = "none"
    LEGACY_OR_NEW[setting]()
    before = _readings()
    with projection.cublas_tf32():
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
    assert _readings() == before
    with pytest.raises(KeyError), projection.cublas_tf32():
        raise KeyError("an error inside the block")
    assert _readings() == before


def test_cublas_tf32_nested_and_from_threads_restores_once(restore_matmul_setting):
    torch.backends.cuda.matmul.fp32_precision = "ieee"
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
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"  # the inner exit restored nothing
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"  # the threads are still inside
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == ["tf32", "tf32"]
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"  # the last one out restored it


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
def test_tf32_projection_has_the_linear_gradients(monkeypatch, restore_matmul_setting, bias, needs):
    """The TF32 path's own autograd formulas (dx, dW, db) against F.linear's, on the CPU, where cuBLAS's
    setting changes nothing, so they must agree to rounding; the setting is back afterwards."""
    monkeypatch.setattr(projection, "follows_cudnn_tf32", lambda tensor: True)
    applied = []
    apply = projection._TF32Linear.apply
    monkeypatch.setattr(projection._TF32Linear, "apply", lambda *a: applied.append(1) or apply(*a))
    torch.backends.cuda.matmul.fp32_precision = "ieee"
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
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"


def test_cpu_projection_is_the_reference_one():
    x, w, b = torch.randn(4, 2, 6), torch.randn(8, 6), torch.randn(8)
    assert torch.equal(projection.project_inputs(x, w, b), reference_project_inputs(x, w, b))


@pytest.mark.gpu
@pytest.mark.parametrize("cudnn_tf32", [True, False], ids=["cudnn-tf32-on", "cudnn-tf32-off"])
def test_cuda_fp32_projection_follows_the_cudnn_switch(monkeypatch, restore_matmul_setting, cudnn_tf32):
    """On CUDA: with cuDNN's switch on, the projection and its gradients are cuBLAS's TF32 products: within
    a hundredth of their distance from the fp32 ones (not to the bit: dW is computed as dy.T @ x here and
    as (x.T @ dy).T by autograd, which cuBLAS may sum in another order); off, the fp32 ones, to the bit
    (the same calls). cuBLAS's own setting is the caller's afterwards."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", cudnn_tf32)
    monkeypatch.delenv("RNNLAB_PROJECTION_TF32", raising=False)
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    x = torch.randn(64, 8, 256, device="cuda", requires_grad=True)  # (T, B, I)
    w = torch.randn(512, 256, device="cuda", requires_grad=True)
    b = torch.randn(512, device="cuda", requires_grad=True)
    dy = torch.randn(64, 8, 512, device="cuda")

    def forward_backward(fn):
        out = fn(x, w, b)
        return [out, *torch.autograd.grad(out, [x, w, b], dy)]

    got = forward_backward(projection.project_inputs)
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    exact = forward_backward(F.linear)
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    tf32 = forward_backward(F.linear)
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    for name, g, t, e in zip(["out", "dx", "dW", "db"], got, tf32, exact, strict=True):
        if not cudnn_tf32:
            assert torch.equal(g, e), name
        elif name != "db":  # db is a sum, not a product: the same either way
            from_tf32, from_fp32 = (g - t).abs().max().item(), (g - e).abs().max().item()
            assert from_fp32 > 0 and from_tf32 <= 0.01 * from_fp32, (name, from_tf32, from_fp32)


@pytest.mark.gpu
def test_fp32_lstm_layer_matches_cudnn_with_tf32(monkeypatch):
    """The triton layer, fp32 with TF32 on (torch's default), against torch.nn's cuDNN LSTM, which uses
    TF32 for all its products too: within TF32's accuracy, outputs and weight gradients."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    layer = LSTM(256, 256, backend="triton").cuda()
    torch_nn = torch.nn.LSTM(256, 256).cuda()
    torch_nn.load_state_dict(layer.state_dict())
    x = torch.randn(50, 16, 256, device="cuda")
    outs = [module(x)[0] for module in (layer, torch_nn)]
    torch.testing.assert_close(outs[0], outs[1], atol=1e-2, rtol=1e-2)
    grads = [
        torch.autograd.grad(o.square().sum(), m.weight_ih_l0)[0]
        for o, m in zip(outs, (layer, torch_nn), strict=True)
    ]
    torch.testing.assert_close(grads[0], grads[1], atol=5e-2, rtol=5e-2)


NEW_API = {
    "rnn ieee": ("torch.backends.cudnn.rnn.fp32_precision = 'ieee'", "tf32x3"),
    "all ieee": ("torch.backends.fp32_precision = 'ieee'", "tf32x3"),
    "cudnn ieee, rnn tf32": (
        "torch.backends.cudnn.fp32_precision = 'ieee'; torch.backends.cudnn.rnn.fp32_precision = 'tf32'",
        "tf32",
    ),
}


@pytest.mark.parametrize("setting", list(NEW_API))
def test_tf32_switch_set_through_torchs_newer_api(setting):
    """A caller that sets TF32 through torch's newer API (after which reading the legacy
    ``torch.backends.cudnn.allow_tf32`` raises) gets the precision cuDNN's RNNs would use, not an error.
    In a fresh interpreter: that API's settings cannot be undone within one process."""
    code, expected = NEW_API[setting]
    script = (
        f"import torch\n{code}\nfrom rnnlab.kernels import common\n"
        "print(common.dot_precision(torch.float32))\n"
    )
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected
