"""Both directions of a bidirectional layer in one call: gx (2, T, B, G*H), w_hh (2, G*H, H), states
(2, B, H), direction 1 reversed; in one launch (the grid's third axis) where ``launch.bidir_launch`` says so,
else one launch per direction. Against the float64 reference (itself two calls), on every path."""

import pytest
import torch
from kernel_cases import DEVICE, Case, check, draw_inputs, draw_lengths, run
from rnnlab.kernels import common, launch

from rnnlab import kernels, reference

CELLS = ["lstm", "gru", "rnn"]
DTYPES = [torch.float32, torch.bfloat16]


def _dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("cell", CELLS)
def test_on_chip_in_one_launch(cell, dtype, lengths):
    check(Case(cell, 3, 7, 20, dtype, lengths, directions=2))


@pytest.mark.parametrize(
    "settings",
    [
        {"RNNLAB_BIDIR_LAUNCH": "one"},  # resident slices, half the programs a direction
        {"RNNLAB_BIDIR_LAUNCH": "one", "RNNLAB_RESIDENT": "0"},  # streamed
        {"RNNLAB_BIDIR_LAUNCH": "one", "RNNLAB_EXCHANGE": "tagged"},  # the tagged words, per direction
        {},  # auto: the split path launches once per direction
    ],
    ids=["one-resident", "one-streamed", "one-tagged", "auto-separate"],
)
@pytest.mark.parametrize("cell", CELLS)
def test_split_path(monkeypatch, cell, settings):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    check(Case(cell, 3, 7, 33, torch.float32, lengths=True, directions=2), block_h=16)


@pytest.mark.parametrize("cell", CELLS)
def test_split_path_in_bf16_with_zero_initial_states(monkeypatch, cell):
    monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", "one")
    check(Case(cell, 3, 7, 33, torch.bfloat16, lengths=True, init="zeros", directions=2), block_h=16)


def test_gru_without_hidden_bias():
    check(Case("gru", 3, 7, 20, torch.float32, lengths=True, bias=False, directions=2))


class _Recorder:
    """Stands in for a kernel: records each launch's grid and REVERSE, then launches the kernel."""

    def __init__(self, kernel, launches):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, grid):
        def launch_it(*args, **kwargs):
            self.launches.append((self.kernel.fn.__name__, tuple(grid), kwargs["REVERSE"]))
            return self.kernel[grid](*args, **kwargs)

        return launch_it


@pytest.mark.parametrize(
    "how, block_h, expected",
    [
        ("auto", 0, "one"),  # on chip: one launch, grid (1, 1, 2)
        ("auto", 16, "separate"),  # split: every SM for each direction in turn
        ("one", 16, "one"),
        ("separate", 0, "separate"),
    ],
)
def test_how_the_directions_launch(monkeypatch, how, block_h, expected):
    from rnnlab.kernels import lstm

    monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", how)
    launches = []
    for name in ("_lstm_fwd_kernel", "_lstm_bwd_kernel"):
        monkeypatch.setattr(lstm, name, _Recorder(getattr(lstm, name), launches))
    case = Case("lstm", 3, 4, 33, torch.float32, directions=2)
    got, _ = run(case, draw_inputs(case), None, "kernel", torch.float32, block_h)
    torch.autograd.backward(got, [torch.ones_like(g) for g in got])
    plan = launch.plan(4, 33, 3, torch.float32, torch.device(DEVICE), block_h, directions=2)
    assert plan.directions == (2 if expected == "one" else 1)
    forward = [(grid, reverse) for name, grid, reverse in launches if name == "_lstm_fwd_kernel"]
    backward = [(grid, reverse) for name, grid, reverse in launches if name == "_lstm_bwd_kernel"]
    assert forward and backward
    if expected == "one":
        assert {reverse for _, reverse in forward + backward} == {2}
        assert {grid for grid, _ in forward + backward} == {(*plan.grid, 2)}
    else:  # forward in time, then reverse, each on the one-direction grid
        for launched in (forward, backward):
            assert {reverse for _, reverse in launched[: len(launched) // 2]} == {False}
            assert {reverse for _, reverse in launched[len(launched) // 2 :]} == {True}
            assert {grid for grid, _ in launched} == {plan.grid}


@pytest.mark.parametrize("how", ["auto", "one", "separate"])
def test_the_layers_question_gets_the_plans_answer(monkeypatch, how):
    """``launch.both_directions_at_once``, which the layers ask (also while torch.compile traces them),
    answers without making a plan what the plan of both directions decides."""
    monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", how)
    answers = set()
    for gates in (1, 3, 4):
        for hidden in (5, 64, 100, 128, 200, 256, 768):
            for dtype in (torch.float32, torch.bfloat16, torch.float16):
                plan = launch.plan(gates, hidden, 16, dtype, torch.device(DEVICE), directions=2)
                answer = launch.both_directions_at_once(gates, hidden, dtype)
                assert answer == (plan.directions == 2), (gates, hidden, dtype)
                answers.add(answer)
    assert answers == ({True, False} if how == "auto" else {how == "one"})


def test_one_launch_split_plans_take_half_the_sms(monkeypatch):
    """Both directions' programs wait at their barriers together, so each direction's plan fills at most
    half the SMs (and so does its fallback, which the same launch would run)."""
    monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", "one")
    monkeypatch.setattr(common, "interpreted", lambda: False)
    monkeypatch.setattr(launch, "num_sms", lambda device: 132)
    both = launch.plan(4, 2048, 8, torch.bfloat16, torch.device("cuda"), directions=2)
    one = launch.plan(4, 2048, 8, torch.bfloat16, torch.device("cuda"))
    assert both.directions == 2 and one.directions == 1
    assert one.grid[1] > 66 >= both.grid[1]
    plan = both
    while plan is not None:
        assert plan.directions == 2 and plan.grid[0] * plan.grid[1] <= 66
        plan = plan.fallback


def test_bad_launch_setting_is_refused(monkeypatch):
    monkeypatch.setenv("RNNLAB_BIDIR_LAUNCH", "both")
    with pytest.raises(ValueError, match="RNNLAB_BIDIR_LAUNCH must be 'auto', 'one' or 'separate'"):
        launch.plan(4, 33, 3, torch.float32, torch.device(DEVICE), directions=2)


@pytest.mark.parametrize("impl", [kernels, reference], ids=["kernels", "reference"])
def test_stacked_inputs_with_reverse_are_refused(impl):
    gx, w_hh, h0 = torch.zeros(2, 3, 2, 4), torch.zeros(2, 4, 4), torch.zeros(2, 2, 4)
    with pytest.raises(ValueError, match="reverse must be False when gx holds both directions"):
        impl.rnn_recurrence(gx, w_hh, h0, None, True)


def test_stacked_shapes_are_checked():
    gx, h0 = torch.zeros(2, 3, 2, 16), torch.zeros(2, 2, 4)
    with pytest.raises(ValueError, match=r"w_hh must be \(2, 16, 4\)"):
        kernels.lstm_recurrence(gx, torch.zeros(16, 4), h0, h0)
    with pytest.raises(ValueError, match=r"initial state must be \(2, 2, 4\)"):
        kernels.lstm_recurrence(gx, torch.zeros(2, 16, 4), h0[0], h0)
    with pytest.raises(ValueError, match=r"or \(2, T, B, 4\*H\) for both directions"):
        kernels.lstm_recurrence(gx[None], torch.zeros(2, 16, 4), h0, h0)
    with pytest.raises(ValueError, match=r"b_hh must be \(2, 12\)"):
        kernels.gru_recurrence(gx[..., :12], torch.zeros(2, 12, 4), torch.zeros(12), h0)


@pytest.mark.parametrize("cell", CELLS)
def test_empty_sequence_returns_the_initial_states(cell):
    case = Case(cell, 3, 0, 20, directions=2)
    inputs = draw_inputs(case)
    got, leaves = run(case, inputs, draw_lengths(case), "kernel", torch.float32)
    assert got[0].shape == (2, 0, 3, 20)
    for state, name in zip(got[1:], ("h0", "c0"), strict=False):
        assert torch.equal(state, inputs[name].float())
    sum(g.sum() for g in got).backward()
    assert torch.equal(leaves["w_hh"].grad, torch.zeros(2, *inputs["w_hh"].shape[1:]))
