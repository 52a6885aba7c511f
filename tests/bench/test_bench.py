"""rnnlab-bench runs end to end on a tiny grid: a table, a CSV, a PNG, and a failing backend reported in its
row while the run goes on. (Speed itself is never asserted: it is measured, in experiments/.)"""

import csv

import pytest

from rnnlab.bench import __main__ as bench
from rnnlab.bench import grid as grid_module
from rnnlab.bench.grid import Row


@pytest.fixture
def tiny_grid(monkeypatch):
    rows = [Row("lstm", 2, 5, 3, 4, "fp32"), Row("rnn", 1, 3, 2, 5, "fp32")]
    monkeypatch.setattr(bench, "grid", lambda *args, **kwargs: rows)
    return rows


def test_bench_writes_table_csv_and_plot(tiny_grid, tmp_path, capsys):
    out_csv, out_png = tmp_path / "b.csv", tmp_path / "b.png"
    code = bench.main(
        [
            "--device",
            "cpu",
            "--reps",
            "1",
            "--backends",
            "reference",
            "loop",
            "--csv",
            str(out_csv),
            "--plot",
            str(out_png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "x cudnn" in printed and "reference" in printed and "loop" in printed
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["cell"], r["backend"]) for r in rows] == [
        ("lstm", "cudnn"),
        ("lstm", "reference"),
        ("lstm", "loop"),
        ("rnn", "cudnn"),
        ("rnn", "reference"),
        ("rnn", "loop"),
    ]
    for r in rows:
        assert float(r["fwd_ms"]) > 0 and float(r["fwd_bwd_ms"]) > 0 and not r["error"]
        assert float(r["max_err"]) < 1e-5  # every backend's output is checked against torch.nn's
        assert r["fwd_bwd_device_ms"] == "nan"  # the profiler's kernel time: CUDA only
        if r["backend"] == "cudnn":
            assert float(r["fwd_ratio"]) == 1.0 and float(r["max_err"]) == 0.0
    assert out_png.stat().st_size > 1000


def test_a_failing_backend_is_reported_in_its_row_and_the_run_goes_on(tiny_grid, tmp_path, monkeypatch):
    from rnnlab.bench import measure

    real_runner = measure._runner

    def flaky_runner(layer, backend, module=None):
        if backend == "reference" and layer._cell == "lstm":

            def fail(x):
                raise RuntimeError("boom on purpose")

            return fail
        return real_runner(layer, backend, module)

    monkeypatch.setattr(measure, "_runner", flaky_runner)
    out_csv = tmp_path / "b.csv"
    args = ["--device", "cpu", "--reps", "1", "--backends", "reference", "--csv", str(out_csv)]
    assert bench.main(args) == 0
    with out_csv.open() as handle:
        rows = {(r["cell"], r["backend"]): r for r in csv.DictReader(handle)}
    assert "boom on purpose" in rows[("lstm", "reference")]["error"]
    assert rows[("lstm", "reference")]["fwd_ms"] == "nan" and rows[("lstm", "reference")]["max_err"] == ""
    assert not rows[("rnn", "reference")]["error"] and float(rows[("rnn", "reference")]["fwd_ms"]) > 0


def test_cuda_without_a_gpu_is_a_clear_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit):
        bench.main(["--device", "cuda"])
    assert "no CUDA device" in capsys.readouterr().err


def test_quick_grids_hold_the_target_shapes():
    rows = grid_module.grid("cpu", True, ["lstm", "gru", "rnn"], None)
    assert {(r.batch, r.steps, r.input_size, r.hidden) for r in rows} == set(grid_module.CPU_SHAPES)
    assert len(grid_module.grid("cuda", False, ["lstm", "gru", "rnn"], None)) == 10 * 3


def test_shapes_selects_rows_of_the_grid(tmp_path, capsys):
    out_csv = tmp_path / "b.csv"
    args = ["--device", "cpu", "--reps", "1", "--cells", "rnn", "--dtypes", "fp32", "--backends", "reference"]
    assert bench.main([*args, "--shapes", "32,100,64,128", "--csv", str(out_csv)]) == 0
    with out_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["batch"], r["steps"], r["input_size"], r["hidden"]) for r in rows} == {
        ("32", "100", "64", "128")
    }
    assert bench.main([*args, "--shapes", "1,2,3,4"]) == 2
    assert "no row of the grid" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main([*args, "--shapes", "1,2,3"])


def test_a_written_csv_reads_back_one_column_by_row_and_backend(tmp_path):
    from rnnlab.bench.report import read_column, write_csv

    shape = dict(cell="lstm", batch=16, steps=1024, input_size=128, hidden=128, dtype="bf16")
    results = [
        dict(shape, backend="cudnn", fwd_bwd_ms=42.5, peak_mb=61.0),
        dict(shape, backend="triton", fwd_bwd_ms=5.5, peak_mb=88.0),
        dict(shape, backend="reference", fwd_bwd_ms=None, peak_mb=None, error="failed"),  # empty cells
    ]
    path = tmp_path / "bench.csv"
    write_csv(results, path)
    key = ("lstm", 16, 1024, 128, 128, "bf16")
    assert read_column(path, "fwd_bwd_ms") == {key: {"cudnn": 42.5, "triton": 5.5}}
    assert read_column(path, "peak_mb") == {key: {"cudnn": 61.0, "triton": 88.0}}


@pytest.mark.parametrize(
    "option",
    [["--reps", "0"], ["--reps", "-3"], ["--shapes", "0,100,64,128"], ["--shapes", "32,-1,64,128"]],
    ids=" ".join,
)
def test_out_of_range_numbers_are_argparse_errors_before_anything_runs(option, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("nothing may be measured")

    monkeypatch.setattr(bench, "measure_row", never)
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--device", "cpu", "--quick", "--cells", "rnn", *option])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert option[0] in captured.err and captured.out == ""


def test_markdown_shows_a_failed_backends_error_as_the_table_does():
    import re

    from rnnlab.bench.report import COLUMNS, markdown, table

    nan = float("nan")
    shape = dict(cell="rnn", batch=32, steps=100, input_size=64, hidden=128, dtype="fp32", peak_mb=None)
    timed = dict(fwd_ms=1.0, fwd_bwd_ms=3.0, fwd_ratio=1.0, fwd_bwd_ratio=1.0, fwd_bwd_device_ms=nan)
    error = "ValueError: backend 'triton' cannot run here: a|b " + "x" * 80  # a | and past the 60 shown
    results = [
        dict(shape, backend="cudnn", **timed, max_err=0.0, error=None),
        dict(shape, backend="triton", **{k: nan for k in timed}, max_err=None, error=error),
    ]

    def cells(line: str) -> list[str]:  # split on the | that are not escaped
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]

    header, rule, ok, failed = markdown(results).splitlines()
    assert cells(header) == COLUMNS and cells(header)[-1] == "error" and rule.count("---") == len(COLUMNS)
    assert cells(ok)[-1] == "" and len(cells(ok)) == len(COLUMNS)
    assert cells(failed)[-1] == error[:60] and len(cells(failed)) == len(COLUMNS)
    assert table(results).splitlines()[-1].endswith(error[:60])  # the table shows the same text
