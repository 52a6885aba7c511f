"""The fused LSTM, GRU and RNN kernels against rnnlab.reference on small, odd shapes (interpreter on CPU).

Every case compares out, the final states and the gradients of gx, w_hh, b_hh (GRU), h0 and c0 (LSTM)."""

import contextlib
import signal

import pytest
import torch
from kernel_cases import DEVICE, Case, check, draw_inputs, draw_lengths, run

# Odd sizes: H not a power of two (masked columns), B below the 16-row batch tile (masked rows), T = 1.
SHAPES = [(1, 1, 5), (3, 7, 20), (1, 7, 33), (3, 7, 33)]  # (B, T, H)
# (lengths, reverse, initial states)
MODES = [
    (False, False, "random"),
    (False, False, "zeros"),
    (True, False, "random"),
    (False, True, "random"),
    (True, True, "random"),
    (True, True, "zeros"),
]
DTYPES = [torch.float32, torch.bfloat16]
CELLS = [("lstm", "tanh"), ("gru", "tanh"), ("rnn", "tanh")]


def _shape_id(shape):
    return "B{}-T{}-H{}".format(*shape)


def _mode_id(mode):
    lengths, reverse, init = mode
    return "-".join(["lengths" if lengths else "full", "reverse" if reverse else "forward", f"{init}-init"])


def _dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


def _cell_id(cell):
    return cell[0] if cell[0] != "rnn" else f"rnn-{cell[1]}"


@pytest.mark.parametrize("mode", MODES, ids=_mode_id)
@pytest.mark.parametrize("shape", SHAPES, ids=_shape_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_matches_reference(cell, dtype, shape, mode):
    batch, steps, hidden = shape
    lengths, reverse, init = mode
    check(Case(cell[0], batch, steps, hidden, dtype, lengths, reverse, init, nonlinearity=cell[1]))


@pytest.mark.parametrize("mode", [MODES[0], MODES[4]], ids=_mode_id)
@pytest.mark.parametrize("nonlinearity", ["relu", "sigmoid"])
def test_rnn_nonlinearities(nonlinearity, mode):
    lengths, reverse, init = mode
    check(Case("rnn", 3, 7, 20, torch.float32, lengths, reverse, init, nonlinearity=nonlinearity))


@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
def test_gru_without_hidden_bias(dtype):
    check(Case("gru", 3, 7, 20, dtype, lengths=True, reverse=True, bias=False))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_hidden_size_one(cell):
    """H = 1: a single real column in a 16-wide tile, the rest masked."""
    check(Case(cell, 3, 7, 1, torch.float32, lengths=True, reverse=True))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fp16(cell):
    check(Case(cell, 3, 7, 20, torch.float16, lengths=True, reverse=True))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_two_batch_tiles(cell):
    """B = 17: a second program with one real row."""
    check(Case(cell, 17, 4, 5, torch.float32, lengths=True, reverse=False))


# The tiled path (W_hh re-read in 16 x 16 tiles, h through the scratch buffer): what large H runs on the GPU.
@pytest.mark.parametrize("mode", [MODES[0], MODES[2], MODES[4]], ids=_mode_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("hidden", [20, 33], ids=lambda h: f"H{h}")
@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_tiled_path_matches_reference(cell, hidden, dtype, mode):
    """One column tile per program (2 or 3 programs): each keeps its slice of W_hh resident."""
    lengths, reverse, init = mode
    check(Case(cell[0], 3, 7, hidden, dtype, lengths, reverse, init, nonlinearity=cell[1]), block_h=16)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_tiled_path_streaming_the_weight(monkeypatch, cell):
    """RNNLAB_RESIDENT=0: one tile per program, W_hh re-read from memory every step."""
    from rnnlab.kernels import launch

    monkeypatch.setenv("RNNLAB_RESIDENT", "0")
    assert not launch.plan(4, 33, 3, torch.float32, torch.device("cpu"), block_h=16).meta["RESIDENT"]
    check(Case(cell, 3, 7, 33, torch.bfloat16, lengths=True, reverse=True), block_h=16)


@pytest.mark.parametrize("resident", ["1", "0"], ids=["resident", "streamed"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fp32_backward_reading_w_hh_as_stored(monkeypatch, cell, resident):
    """RNNLAB_BACKWARD_WT=0: the fp32 backward reads W_hh (G*H, H) as stored, not its transpose (the
    default, common.backward_weight), on chip and on both split paths."""
    from rnnlab.kernels import common

    monkeypatch.setenv("RNNLAB_BACKWARD_WT", "0")
    monkeypatch.setenv("RNNLAB_RESIDENT", resident)
    assert not common.backward_transposed(torch.float32)
    check(Case(cell, 3, 7, 33, torch.float32, lengths=True, reverse=True), block_h=16)
    if resident == "1":
        check(Case(cell, 3, 7, 20, torch.float32))  # on chip


def test_backward_weight_is_the_transpose_in_fp32(monkeypatch):
    """The fp32 backward gets W_hh^T, contiguous, for one direction and for two stacked; bf16 and fp16 get
    W_hh as it is; RNNLAB_BACKWARD_WT=0 turns the transpose off."""
    from rnnlab.kernels import common

    monkeypatch.delenv("RNNLAB_BACKWARD_WT", raising=False)
    for shape in [(12, 3), (2, 12, 3)]:
        w_hh = torch.randn(shape)
        w, w_t = common.backward_weight(w_hh)
        assert w_t and w.is_contiguous() and torch.equal(w, w_hh.transpose(-1, -2))
        for dtype in (torch.bfloat16, torch.float16):
            w, w_t = common.backward_weight(w_hh.to(dtype))
            assert not w_t and torch.equal(w, w_hh.to(dtype))
    monkeypatch.setenv("RNNLAB_BACKWARD_WT", "0")
    w, w_t = common.backward_weight(w_hh)
    assert not w_t and torch.equal(w, w_hh)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_wide_resident_slices(monkeypatch, cell):
    """The comparison setting RNNLAB_TILE=64,... with RNNLAB_RESIDENT_ELEMENTS=32768: fp32 at H = 100
    (padded 128) as two resident programs of 64 columns each, the plan the next GPU run times against
    the default (eight programs of 16)."""
    from rnnlab.kernels import common, launch

    monkeypatch.setenv("RNNLAB_TILE", "64,32,4,3")
    monkeypatch.setenv("RNNLAB_RESIDENT_ELEMENTS", "32768")
    plan = launch.plan(common.GATES[cell], 100, 3, torch.float32, torch.device(DEVICE))
    assert plan.meta["RESIDENT"] and plan.meta["BLOCK_N"] == 64 and plan.grid == (1, 2)
    check(Case(cell, 3, 5, 100, torch.float32, lengths=True, reverse=True))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_on_chip_with_one_pipeline_stage(monkeypatch, cell):
    """RNNLAB_ON_CHIP_STAGES=1, the comparison setting that fits GRU's fp32 backward at H = 128 on chip."""
    from rnnlab.kernels import common, launch

    monkeypatch.setenv("RNNLAB_ON_CHIP_STAGES", "1")
    plan = launch.plan(common.GATES[cell], 20, 3, torch.float32, torch.device(DEVICE))
    assert plan.meta["ON_CHIP"] and plan.meta["num_stages"] == 1
    check(Case(cell, 3, 7, 20, torch.float32, lengths=True, reverse=True))


@contextlib.contextmanager
def _within(seconds: int):
    """Fail instead of hanging: under the interpreter every tag a poll waits for is already written (the
    split path runs step by step), so a wrong tag would make ``device.tagged_load`` spin forever."""

    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a tagged poll waits for a tag never written")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# (B, H, dtype): one batch tile of 3 rows and 3 column tiles; two batch tiles (B = 20) of 2 column tiles
# (also the fused gates' shapes)
TAGGED_SHAPES = [(3, 33, torch.float32), (3, 33, torch.bfloat16), (20, 20, torch.float32)]


@pytest.mark.parametrize(
    "batch, hidden, dtype",
    TAGGED_SHAPES,
    ids=lambda v: _dtype_id(v) if isinstance(v, torch.dtype) else str(v),
)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_tagged_exchange_matches_the_barrier(monkeypatch, cell, batch, hidden, dtype):
    """RNNLAB_EXCHANGE=tagged: on the resident split path the forward passes h, and the backward the gate
    gradients, between programs as (step, value) words instead of meeting at the barrier. Same values to
    the bit, and right against the reference. Under the interpreter the split path runs step by step, so
    every read after the first finds its tags at once: this checks the packing, the slots and the tags
    (a wrong tag fails it through ``_within``); the polling itself is checked on a GPU (test_gpu.py:
    test_grid_barrier_matches_step_by_step_launches)."""
    from rnnlab.kernels import common, launch

    monkeypatch.delenv("RNNLAB_FUSED_GATES", raising=False)  # fused, the two backwards differ by design
    case = Case(cell, batch, 7, hidden, dtype, lengths=True, reverse=True)
    inputs, lengths = draw_inputs(case), draw_lengths(case)
    upstream = None

    def outputs_and_grads():
        nonlocal upstream
        got, leaves = run(case, inputs, lengths, "kernel", dtype, block_h=16)
        upstream = upstream or [torch.randn_like(g) for g in got]
        torch.autograd.backward(got, upstream)
        return [*got, *(leaf.grad for leaf in leaves.values() if leaf is not None)]

    through_barrier = outputs_and_grads()
    monkeypatch.setenv("RNNLAB_EXCHANGE", "tagged")
    plan = launch.plan(common.GATES[cell], hidden, batch, dtype, torch.device(DEVICE), block_h=16)
    assert plan.tagged and plan.grid == (-(-batch // 16), -(-hidden // 16))
    tagged_launches, launch_run = [], launch.run

    def watched(kernel, plan, steps, args, **kwargs):
        tagged_launches.append(plan.tagged)
        return launch_run(kernel, plan, steps, args, **kwargs)

    monkeypatch.setattr(launch, "run", watched)
    with _within(120):
        through_tags = outputs_and_grads()
        assert tagged_launches == [True, True]  # forward and backward
        for a, b in zip(through_barrier, through_tags, strict=True):
            assert torch.equal(a, b)
        check(case, block_h=16)


@pytest.mark.parametrize("exchange", ["barrier", "tagged"])
@pytest.mark.parametrize(
    "batch, hidden, dtype",
    TAGGED_SHAPES,
    ids=lambda v: _dtype_id(v) if isinstance(v, torch.dtype) else str(v),
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_gates_on_the_resident_path(monkeypatch, cell, batch, hidden, dtype, exchange):
    """RNNLAB_FUSED_GATES=1: the resident split path's forward computes every gate's product as one (the
    gates' W^T slices side by side, split after) and its backward the sum over the gates as one batched
    product; against the reference, with lengths, reversed, one and two batch tiles, 3 column tiles of
    H = 33 padded to 64 (GRU: its three gates and a masked fourth). With the tagged exchange the backward
    keeps its per-gate products (their operands arrive as tagged words) and the forward is fused."""
    from rnnlab.kernels import common, launch

    monkeypatch.setenv("RNNLAB_FUSED_GATES", "1")
    monkeypatch.setenv("RNNLAB_EXCHANGE", exchange)
    plan = launch.plan(common.GATES[cell], hidden, batch, dtype, torch.device(DEVICE), block_h=16)
    assert plan.meta["RESIDENT"] and plan.meta["FUSED"] == 2 and plan.grid[1] == -(-hidden // 16)
    with _within(120):
        check(Case(cell, batch, 7, hidden, dtype, lengths=True, reverse=True), block_h=16)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_forward_with_the_backward_per_gate(monkeypatch, cell):
    """Where the fused backward's tiles would not fit in shared memory (FUSED_BACKWARD_BYTES: LSTM fp16 at
    H = 768 with the resident bounds raised), only the forward fuses (FUSED 1)."""
    from rnnlab.kernels import common, launch

    monkeypatch.setenv("RNNLAB_FUSED_GATES", "1")
    monkeypatch.setattr(launch, "num_sms", lambda device: 132)
    monkeypatch.setattr(common, "interpreted", lambda: False)
    monkeypatch.setenv("RNNLAB_RESIDENT_ELEMENTS", "65536")
    monkeypatch.setenv("RNNLAB_RESIDENT_STATE", "16384")
    assert launch.plan(4, 768, 16, torch.float16, torch.device("cuda")).meta["FUSED"] == 1
    monkeypatch.undo()
    monkeypatch.setenv("RNNLAB_FUSED_GATES", "1")
    monkeypatch.setattr(launch, "FUSED_BACKWARD_BYTES", 1024)
    launch._make_plan.cache_clear()  # plans remember the bounds they were made with
    try:
        plan = launch.plan(common.GATES[cell], 33, 3, torch.float32, torch.device(DEVICE), block_h=16)
        assert plan.meta["RESIDENT"] and plan.meta["FUSED"] == 1
        check(Case(cell, 3, 7, 33, torch.float32, lengths=True, reverse=True), block_h=16)
    finally:
        monkeypatch.undo()
        launch._make_plan.cache_clear()


@pytest.mark.parametrize(
    "batch, hidden", [(3, 33), (17, 70)], ids=["one-tile-each", "more-tiles-than-programs"]
)
@pytest.mark.parametrize("dtype", DTYPES, ids=_dtype_id)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fused_gates_on_the_streamed_path(monkeypatch, cell, dtype, batch, hidden):
    """RNNLAB_FUSED_GATES=1 with W_hh streamed (RNNLAB_RESIDENT=0): each K tile's product covers every
    gate's columns at once; H = 70 in 16-column tiles gives 5 tiles to 4 programs under the interpreter
    (which plans for 4 SMs: one program owns two tiles) and B = 17 two batch tiles."""
    from rnnlab.kernels import common, launch

    monkeypatch.setenv("RNNLAB_FUSED_GATES", "1")
    monkeypatch.setenv("RNNLAB_RESIDENT", "0")
    plan = launch.plan(common.GATES[cell], hidden, batch, dtype, torch.device(DEVICE), block_h=16)
    assert not plan.meta["RESIDENT"] and plan.meta["FUSED"] == 1
    check(Case(cell, batch, 5, hidden, dtype, lengths=True, reverse=True), block_h=16)


def test_fused_gates_only_where_they_apply(monkeypatch):
    """Only LSTM's and GRU's split plans fuse, the streamed ones in the forward only; the RNN's kernels
    take no FUSED (one gate)."""
    from rnnlab.kernels import launch

    cpu = torch.device("cpu")
    monkeypatch.setenv("RNNLAB_FUSED_GATES", "1")
    assert "FUSED" not in launch.plan(1, 33, 3, torch.float32, cpu, block_h=16).meta
    assert not launch.plan(4, 20, 3, torch.float32, cpu).meta["FUSED"]  # on chip
    monkeypatch.setenv("RNNLAB_RESIDENT", "0")
    assert launch.plan(4, 33, 3, torch.float32, cpu, block_h=16).meta["FUSED"] == 1  # streamed: forward
    monkeypatch.setenv("RNNLAB_FUSED_GATES", "yes")
    with pytest.raises(ValueError, match="RNNLAB_FUSED_GATES must be 0 or 1"):
        launch.plan(4, 33, 3, torch.float32, cpu)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_tiled_path_with_more_column_tiles_than_programs(monkeypatch, cell):
    """H = 70 in 16-column tiles: 5 tiles dealt round-robin to 4 programs per batch tile (a device of 4
    SMs, as the interpreter pretends to be), so one program owns two tiles; 2 batch tiles (B = 17)."""
    from rnnlab.kernels import launch

    monkeypatch.setattr(launch, "num_sms", lambda device: 4)
    plan = launch.plan(4, 70, 17, torch.float32, torch.device(DEVICE), block_h=16)
    assert plan.grid == (2, 2) and plan.sync == (DEVICE == "cuda")  # 4 "SMs" shared by 2 batch tiles
    assert not plan.meta["RESIDENT"]  # W_hh streamed: a program's tiles change within a step
    check(Case(cell, 17, 5, 70, torch.float32, lengths=True, reverse=True), block_h=16)
    check(Case(cell, 3, 5, 70, torch.float32, lengths=True), block_h=16)  # (1, 4): a program with 2 tiles


@pytest.mark.parametrize("cell, hidden", [("lstm", 100), ("gru", 100), ("rnn", 200)])
def test_largest_on_chip_tiles_in_bf16(cell, hidden):
    """bf16 W_hh of up to 128 KB stays on chip (launch.ON_CHIP_BYTES): LSTM/GRU to H = 128, RNN to 256."""
    from rnnlab.kernels import common, launch

    plan = launch.plan(common.GATES[cell], hidden, 3, torch.bfloat16, torch.device(DEVICE))
    assert plan.meta["ON_CHIP"] and plan.meta["BLOCK_N"] == (256 if cell == "rnn" else 128)
    check(Case(cell, 3, 5, hidden, torch.bfloat16, lengths=True, reverse=True))


@pytest.mark.parametrize("block_h", [0, 16], ids=["on-chip", "tiled"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_without_prefetch(monkeypatch, cell, block_h):
    """RNNLAB_PREFETCH=0 (a comparison setting): every step loads its own inputs instead of the next
    step's (the default, tested everywhere else)."""
    from rnnlab.kernels import launch

    monkeypatch.setenv("RNNLAB_PREFETCH", "0")
    assert not launch.plan(4, 33, 3, torch.float32, torch.device(DEVICE), block_h=block_h).meta["PREFETCH"]
    check(Case(cell, 3, 7, 33, torch.float32, lengths=True, reverse=True), block_h=block_h)
    check(Case(cell, 3, 7, 33, torch.bfloat16, lengths=True), block_h=block_h)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_empty_sequence_returns_initial_states(cell):
    from kernel_cases import draw_inputs, run

    case = Case(cell, 3, 0, 5)
    inputs = draw_inputs(case)
    got, leaves = run(case, inputs, None, "kernel", torch.float32)
    assert got[0].shape == (0, 3, 5)
    states = [inputs["h0"], inputs["c0"]] if cell == "lstm" else [inputs["h0"]]
    for state, initial in zip(got[1:], states, strict=True):
        torch.testing.assert_close(state.double(), initial)
    sum(s.sum() for s in got[1:]).backward()
    assert torch.all(leaves["w_hh"].grad == 0)
    assert torch.all(leaves["h0"].grad == 1)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_inference_matches_training_forward(cell):
    """Under no_grad nothing is saved for backward (a separate kernel specialisation): same outputs."""
    from kernel_cases import draw_inputs, draw_lengths, run

    case = Case(cell, 3, 7, 20, lengths=True)
    inputs, lengths = draw_inputs(case), draw_lengths(case)
    trained, _ = run(case, inputs, lengths, "kernel", torch.float32)
    with torch.no_grad():
        inferred, _ = run(case, inputs, lengths, "kernel", torch.float32)
    for a, b in zip(trained, inferred, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=0)


def test_rnn_rejects_unknown_nonlinearity():
    from rnnlab.kernels import rnn_recurrence

    with pytest.raises(ValueError, match="nonlinearity"):
        rnn_recurrence(torch.zeros(1, 1, 4), torch.zeros(4, 4), torch.zeros(1, 4), nonlinearity="gelu")
