"""experiments/kernels/compile_sm90.py: the kernels kernels/launch.py plans for a GPU run's rows and knob
settings, and other cards' limits (compilation stubbed), and every kernel variant compiled for an H100 by
Triton's own compiler and ptxas (about two minutes here: the check the interpreter cannot make)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kernel_scripts import HERE, load


def test_plans_each_row_under_each_setting_as_on_an_h100(monkeypatch, capsys):
    # The script drops TRITON_INTERPRET on import, to compile for the GPU, and Triton reads it when a kernel
    # is decorated: the kernel modules are imported first, under the interpreter, for the tests after this
    # one; and monkeypatch restores the variable after it.
    from rnnlab.kernels import gru, lstm, rnn  # noqa: F401

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    script = load("compile_sm90")
    compiled = []
    monkeypatch.setattr(script, "compile_variant", lambda fn, dtype, meta, *a: compiled.append(meta) or "ok")
    argv = ["--rows", "lstm,16,512,768,768,fp16", "--settings", "default"]
    argv.append("RNNLAB_RESIDENT_ELEMENTS=65536,RNNLAB_RESIDENT_STATE=16384")
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    plans = [line for line in out.splitlines() if line.startswith("# lstm")]
    assert "default: streamed, grid (1, 48), tiles 16x16x64" in plans[0], out
    assert "resident, grid (1, 48), tiles 16x16x1024, 8 warps" in plans[1], out
    assert [m["RESIDENT"] for m in compiled] == [False, False, True, True]  # forward and backward each
    assert {m.get("PHASE1") for m in compiled} == {None, True}
    assert "RNNLAB_RESIDENT_STATE" not in os.environ


def test_another_card_marks_what_is_over_its_shared_memory(monkeypatch, capsys):
    """--arch: the target named in the header, and a variant over the card's shared memory for one program
    marked with what the launcher then does (kernels/launch.py: Plan.fallback)."""
    from rnnlab.kernels import gru, lstm, rnn  # noqa: F401  (see the test above)

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    script = load("compile_sm90")
    targets = []

    def stub(fn, dtype, meta, *args):  # the backward of a 64-row tile over 99 KB, the forward within
        targets.append(script.TARGET)
        return "h REG:1 STACK:0 SMEM:" + ("147456" if "PHASE1" in meta else "73728")

    monkeypatch.setattr(script, "compile_variant", stub)
    assert script.main(["--arch", "89", "--rows", "lstm,64,64,512,512,fp16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "target sm_89" in lines[0] and "tiles 64x16x64" in lines[1]
    assert lines[2].endswith("SMEM:73728") and lines[3].endswith("SMEM:147456  OVER 101376: falls back")
    assert {(t.backend, t.arch) for t in targets} == {("cuda", 89)}
    assert script.over_the_card("h SMEM:73728", 65536, fallback=False) == "  OVER 65536: no fallback"
    assert script.over_the_card("does not compile: CompilationError", 65536, fallback=False) == ""
    assert script.main(["--arch", "gfx942", "--rows", "lstm,64,64,512,512,fp16"]) == 0
    assert (targets[-1].backend, targets[-1].arch) == ("hip", "gfx942")


# a variant's line ends so when it compiled within the card's shared memory (no "does not compile", no OVER)
COMPILED = re.compile(r" [0-9a-f]{16}  REG:\d+ STACK:\d+ SMEM:\d+$")


@pytest.mark.slow
def test_every_kernel_variant_compiles_for_an_h100():
    """The compiler's rules, which the interpreter does not enforce (tl.dot dimensions >= 16, power-of-two
    blocks, no control flow on tensor values, shared memory within the card), checked with Triton's own
    compiler and ptxas: every variant of three of compile_sm90.py's sets compiles for sm_90 within an
    H100's 227 KB a program. Between them the sets take lengths, the saved forward, GRU's biases, the
    RNN's activation, aligned sizes and bf16/fp16 both ways, and both directions in one launch; the grid
    barrier on, as on a GPU, and the comparison knobs at their defaults. Each set in its own process
    (about 1 s a variant here), the three at once."""
    triton = pytest.importorskip("triton")
    if shutil.which("ptxas", path=str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin")) is None:
        pytest.skip("this Triton has no bundled ptxas to compile for sm_90 with")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = str(HERE / "compile_sm90.py")
    sets = {
        "aligned": ["--aligned"],  # with lengths, the saving forward
        "odd sizes, plain": ["--plain"],  # no lengths, inference forward, no GRU biases, RNN relu, fp16
        "both directions": ["--aligned", "--both-directions"],
    }
    pipes = dict(env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    runs = {name: subprocess.Popen([sys.executable, script, *args], **pipes) for name, args in sets.items()}
    counts = {}
    for name, run in runs.items():
        out, _ = run.communicate(timeout=900)
        assert run.returncode == 0, f"{name}: compile_sm90.py exited {run.returncode}\n{out[-3000:]}"
        variants = [line for line in out.splitlines() if line and not line.startswith("#")]
        failed = [line for line in variants if not COMPILED.search(line)]
        assert not failed, f"{name}: variants that do not compile or exceed 227 KB:\n" + "\n".join(failed)
        counts[name] = len(variants)
    # LSTM, GRU, RNN x fp32, bf16 x their paths x forward, backward, backward without d_out
    assert set(counts.values()) == {81}, counts
