"""experiments/kernels/knob_ab.py (knob settings side by side in one process) and host_profile.py (where a
call's host time goes): parsing, the environment restored, and a tiny run of each under the interpreter."""

from __future__ import annotations

import csv
import os

import pytest
from kernel_scripts import load


def test_rows_and_settings_are_parsed_or_refused_by_name():
    ab = load("knob_ab")
    row = ab.parse_row("gru,4,7,8,16,bf16")
    assert row == ab.Row("gru", 4, 7, 8, 16, "bf16")
    assert ab.parse_row("gru,4,7,8,16,bf16,bi") == ab.Row("gru", 4, 7, 8, 16, "bf16", directions=2)
    assert ab.parse_setting("default") == {}
    two = {"RNNLAB_PREFETCH": "0", "RNNLAB_RESIDENT": "0"}
    assert ab.parse_setting("RNNLAB_PREFETCH=0,RNNLAB_RESIDENT=0") == two
    bad_rows = ("lstm,4,7,8,16", "lstm,4,7,8,16,fp64", "cell,4,7,8,16,fp32", "lstm,4,x,8,16,fp32")
    for bad in (*bad_rows, "lstm,4,7,8,16,fp32,x"):
        with pytest.raises(Exception, match="--rows"):
            ab.parse_row(bad)
    tile = {"RNNLAB_TILE": "64,32,4,3", "RNNLAB_RESIDENT_ELEMENTS": "32768"}  # commas inside a value
    assert ab.parse_setting("RNNLAB_TILE=64,32,4,3,RNNLAB_RESIDENT_ELEMENTS=32768") == tile
    for bad in ("PREFETCH=0", "RNNLAB_PREFETCH", "RNNLAB_PREFETCH=0,other=1"):
        with pytest.raises(Exception, match="--settings"):
            ab.parse_setting(bad)


def test_knobs_are_exactly_the_setting_inside_and_restored_after(monkeypatch):
    ab = load("knob_ab")
    monkeypatch.setenv("RNNLAB_RESIDENT", "0")
    monkeypatch.delenv("RNNLAB_PREFETCH", raising=False)
    with ab.knobs_set({"RNNLAB_PREFETCH": "0"}):
        assert os.environ["RNNLAB_PREFETCH"] == "0" and "RNNLAB_RESIDENT" not in os.environ
    assert os.environ["RNNLAB_RESIDENT"] == "0" and "RNNLAB_PREFETCH" not in os.environ


def test_a_tiny_comparison_runs_every_setting_against_cudnn(tmp_path, capsys):
    ab = load("knob_ab")
    out = tmp_path / "ab.csv"
    rows = ["lstm,2,3,8,16,fp32", "gru,2,3,8,16,fp32,bi"]
    argv = ["--rows", *rows, "--settings", "default", "RNNLAB_PREFETCH=0"]
    assert ab.main([*argv, "--rounds", "1", "--device", "cpu", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["setting"] for r in rows] == ["cudnn", "default", "RNNLAB_PREFETCH=0"] * 2
    assert rows[3]["row"].endswith("bidirectional")
    for r in rows:
        assert float(r["fwd_ms"]) > 0 and float(r["fwd_bwd_ms"]) > 0
        assert float(r["max_err"]) < 1e-5  # each setting's output checked against torch.nn's
    assert float(rows[0]["fwd_ratio"]) == float(rows[3]["fwd_ratio"]) == 1.0
    assert "RNNLAB_PREFETCH=0" in capsys.readouterr().out


def test_a_setting_that_cannot_run_is_left_out_and_the_others_run(tmp_path, capsys):
    ab = load("knob_ab")
    out = tmp_path / "ab.csv"
    argv = ["--rows", "lstm,2,3,8,16,fp32", "--settings", "RNNLAB_FUSED_GATES=2", "default"]
    assert ab.main([*argv, "--rounds", "1", "--device", "cpu", "--csv", str(out)]) == 0
    assert [r["setting"] for r in csv.DictReader(out.open())] == ["cudnn", "default"]
    assert (
        "[RNNLAB_FUSED_GATES=2] left out: ValueError: RNNLAB_FUSED_GATES must be 0 or 1"
        in capsys.readouterr().out
    )


def test_a_setting_whose_plan_the_card_refuses_says_so(tmp_path, capsys, monkeypatch):
    """Where the card refuses a setting's plan, launch.run runs its fallback: that setting's times are the
    fallback's, and the output and the CSV must say so, for that setting only. A stand-in for the card
    refuses the on-chip plans while RNNLAB_PREFETCH=0 is set."""
    ab = load("knob_ab")
    from rnnlab.kernels import launch

    real = launch.run

    def refusing(kernel, plan, steps, args, **kw):
        if plan.meta["ON_CHIP"] and os.environ.get("RNNLAB_PREFETCH") == "0":
            launch._NO_ROOM.add((kernel, args[0].device, tuple(sorted(plan.meta.items()))))
            return real(kernel, plan.fallback, steps, args, **kw)
        return real(kernel, plan, steps, args, **kw)

    monkeypatch.setattr(launch, "run", refusing)
    monkeypatch.setattr(launch, "_NO_ROOM", set())
    out = tmp_path / "ab.csv"
    argv = ["--rows", "rnn,2,3,8,16,fp32", "--settings", "default", "RNNLAB_PREFETCH=0"]
    assert ab.main([*argv, "--rounds", "1", "--device", "cpu", "--csv", str(out)]) == 0
    rows = {r["setting"]: r for r in csv.DictReader(out.open())}
    assert rows["default"]["refused"] == "0" and rows["RNNLAB_PREFETCH=0"]["refused"] == "2"  # fwd, bwd
    assert float(rows["RNNLAB_PREFETCH=0"]["max_err"]) < 1e-5
    text = capsys.readouterr().out
    refused = "_rnn_bwd_kernel on chip 16x16x16; _rnn_fwd_kernel on chip 16x16x16"
    assert f"[RNNLAB_PREFETCH=0] ran a fallback: the card refused {refused}\n" in text
    assert "(2 refused: a fallback's times)" in text


def test_host_profile_prints_times_and_a_profile_per_backend(capsys):
    profile = load("host_profile")
    assert profile.main(["--row", "rnn,2,3,8,16,fp32", "--calls", "1", "--top", "3", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    for backend in ("triton", "cudnn"):
        for kind in ("fwd", "fwd+bwd"):
            assert f"{backend} {kind}: " in text
    assert text.count("Ordered by: internal time") == 4


def test_host_profile_times_a_compiled_layer(capsys):
    profile = load("host_profile")
    argv = ["--row", "rnn,2,3,8,16,fp32", "--calls", "1", "--top", "3", "--device", "cpu"]
    compiled = ["--compile", "default", "--compile-backend", "aot_eager"]
    assert profile.main([*argv, "--backends", "triton", *compiled]) == 0
    text = capsys.readouterr().out
    assert "triton (torch.compile default, aot_eager) fwd: " in text
    assert "triton (torch.compile default, aot_eager) fwd+bwd: " in text
