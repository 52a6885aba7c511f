"""``supports``: may backend="auto" pick the fused path; ``available``: can the kernels run at all."""

import importlib
import sys

import pytest
import torch

from rnnlab import kernels

CUDA = torch.device("cuda")


def test_package_exports_exactly_the_public_functions():
    assert sorted(kernels.__all__) == [
        "available",
        "gru_recurrence",
        "lstm_recurrence",
        "rnn_recurrence",
        "supports",
    ]
    for name in kernels.__all__:
        assert callable(getattr(kernels, name))


def test_available_under_the_interpreter_or_cuda():
    assert kernels.available() == (torch.cuda.is_available() or kernels.common.interpreted())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "LSTM"])
@pytest.mark.parametrize("hidden", [1, 5, 64, 127, 768, 2048])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_supports_every_hidden_size_and_dtype_on_cuda(cell, hidden, dtype):
    assert kernels.supports(cell, hidden, dtype, CUDA) == torch.cuda.is_available()


@pytest.mark.parametrize(
    "cell, hidden, dtype",
    [
        ("mgu", 64, torch.float32),
        ("lstm", 0, torch.float32),
        ("gru", 64, torch.float64),
        ("rnn", 10**6, torch.float32),
    ],
)
def test_unsupported_configurations(cell, hidden, dtype):
    assert not kernels.supports(cell, hidden, dtype, CUDA)


def test_never_auto_selected_on_an_amd_gpu(monkeypatch):
    """A ROCm build of torch calls its GPUs "cuda" too; the kernels compile for MI300 but never ran there."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(kernels.common, "triton_problem", lambda: None)
    monkeypatch.setattr(torch.version, "hip", None)
    assert kernels.supports("lstm", 32, torch.float32, CUDA)  # an NVIDIA build
    monkeypatch.setattr(torch.version, "hip", "6.4.0")
    assert not kernels.supports("lstm", 32, torch.float32, CUDA)


def test_never_auto_selected_on_cpu():
    """The interpreter runs the kernels on the CPU, but far too slowly to be an automatic choice."""
    assert not kernels.supports("lstm", 32, torch.float32, torch.device("cpu"))
    assert not kernels.supports("lstm", 32, torch.float32, "cpu")


def test_package_imports_without_triton(monkeypatch):
    """Importing rnnlab.kernels (and asking supports/available) must not need Triton."""
    import rnnlab

    monkeypatch.setattr(rnnlab, "kernels", rnnlab.kernels)  # restored afterwards, like sys.modules
    for name in [
        m for m in sys.modules if m == "triton" or m.startswith("triton.") or m.startswith("rnnlab.kernels")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "triton", None)  # import triton -> ImportError
    fresh = importlib.import_module("rnnlab.kernels")
    fresh.common.triton_problem.cache_clear()
    assert not fresh.available()
    assert not fresh.supports("lstm", 32, torch.float32, CUDA)


@pytest.mark.parametrize("version, usable", [("3.2.0", False), ("3.3.1", True), ("3.10.0+git1a2b", True)])
def test_triton_older_than_3_3_is_never_used(monkeypatch, version, usable):
    """Triton 3.2 (torch 2.6's) compiles none of the kernels, so it must not be picked: available() and
    supports() say no, and triton_problem() says why, naming the version found and the one needed."""
    from rnnlab.kernels import common

    fake = type(sys)("triton")
    fake.__version__ = version
    monkeypatch.setitem(sys.modules, "triton", fake)
    monkeypatch.setitem(sys.modules, "triton.language", type(sys)("triton.language"))
    fake.language = sys.modules["triton.language"]
    common.triton_problem.cache_clear()
    try:
        problem = common.triton_problem()
        assert (problem is None) == usable
        if not usable:
            assert f"triton {version} is too old" in problem and "triton >= 3.3" in problem
            assert not kernels.available()
            assert not kernels.supports("lstm", 32, torch.float32, CUDA)
    finally:
        common.triton_problem.cache_clear()  # the real Triton's answer next time


@pytest.fixture
def launch(monkeypatch):
    """rnnlab.kernels.launch planning as on an H100 (132 SMs), whatever this machine has."""
    from rnnlab.kernels import launch

    monkeypatch.setattr(launch, "num_sms", lambda device: 132)
    return launch


@pytest.mark.parametrize("gates", [1, 3, 4])
@pytest.mark.parametrize("batch", [1, 8, 16, 17, 64, 256, 5000])
@pytest.mark.parametrize("hidden", [1, 64, 100, 128, 768, 2048, 16384])
def test_launch_plan_fits_the_sms_and_covers_every_column(monkeypatch, launch, gates, batch, hidden):
    """On a GPU the split path's programs must all be resident at once (they wait for each other), so the
    grid never exceeds the SM count unless each batch tile is a single program (no barrier needed)."""
    from rnnlab.kernels import common

    monkeypatch.setattr(common, "interpreted", lambda: False)
    monkeypatch.delenv("RNNLAB_GRID_SYNC", raising=False)
    plan = launch.plan(gates, hidden, batch, torch.bfloat16, CUDA)
    b_tiles, n_progs = plan.grid
    meta = plan.meta
    assert b_tiles * meta["BLOCK_B"] >= batch > (b_tiles - 1) * meta["BLOCK_B"]
    assert meta["BLOCK_B"] == 16 or (gates != 3 and not meta["ON_CHIP"])  # GRU: 16-row tiles only
    assert n_progs == 1 or b_tiles * n_progs <= 132
    assert plan.sync == (n_progs > 1)
    n_tiles = -(-hidden // meta["BLOCK_N"])
    assert 1 <= n_progs <= n_tiles  # every program owns at least one column tile, every tile an owner
    if meta["ON_CHIP"]:  # W_hh (G x BH x BH bf16) within the shared-memory budget, a split plan behind it
        assert n_progs == 1 and meta["BLOCK_N"] >= hidden and gates * meta["BLOCK_N"] ** 2 * 2 <= 131072
    for smaller in fallbacks(plan):  # what runs where a card refuses the plan before: still a whole plan
        b_tiles, n_progs = smaller.grid
        assert b_tiles * smaller.meta["BLOCK_B"] >= batch and (n_progs == 1 or b_tiles * n_progs <= 132)
        assert 1 <= n_progs <= -(-hidden // smaller.meta["BLOCK_N"]) and smaller.sync == (n_progs > 1)
    if meta["RESIDENT"]:  # one tile per program, the whole (padded) reduction in one resident slice
        assert n_progs == n_tiles and meta["BLOCK_K"] >= hidden
        assert gates * meta["BLOCK_K"] * meta["BLOCK_N"] <= launch.RESIDENT_ELEMENTS
        assert meta["BLOCK_B"] * meta["BLOCK_K"] <= launch.RESIDENT_STATE


def test_resident_weight_slices_where_they_fit(monkeypatch, launch):
    assert launch.plan(4, 128, 16, torch.float32, CUDA).meta["RESIDENT"]  # 4 x 128 x 16 = 8K elements
    assert not launch.plan(4, 768, 16, torch.bfloat16, CUDA).meta["RESIDENT"]  # 4 x 1024 x 16: streamed
    assert launch.plan(1, 512, 16, torch.bfloat16, CUDA).meta["RESIDENT"]
    assert not launch.plan(1, 512, 64, torch.bfloat16, CUDA).meta["RESIDENT"]  # 64 x 512 state tile
    monkeypatch.setenv("RNNLAB_RESIDENT", "0")
    assert not launch.plan(4, 128, 16, torch.float32, CUDA).meta["RESIDENT"]


@pytest.mark.parametrize(
    "gates, hidden, dtype, on_chip",
    [
        (4, 64, torch.float32, True),  # 4 x 64^2 x 4 bytes = 64 KB
        (4, 65, torch.float32, False),  # padded to 128: 256 KB
        (4, 128, torch.bfloat16, True),  # 128 KB
        (4, 128, torch.float16, True),
        (4, 129, torch.bfloat16, False),  # padded to 256: 512 KB
        (3, 100, torch.bfloat16, True),  # 96 KB
        (3, 128, torch.float32, False),  # 192 KB
        (1, 128, torch.float32, True),  # 64 KB
        (1, 256, torch.bfloat16, True),  # 128 KB
        (1, 256, torch.float32, False),  # 256 KB
    ],
)
def test_on_chip_where_w_hh_fits_the_shared_memory_budget(monkeypatch, launch, gates, hidden, dtype, on_chip):
    monkeypatch.delenv("RNNLAB_ON_CHIP_BYTES", raising=False)
    assert launch.plan(gates, hidden, 16, dtype, CUDA).meta["ON_CHIP"] is on_chip


def test_on_chip_budget_can_be_set_for_comparisons(monkeypatch, launch):
    monkeypatch.setenv("RNNLAB_ON_CHIP_BYTES", "65536")  # the earlier bound: bf16 LSTM on chip to H=64
    assert launch.plan(4, 64, 16, torch.bfloat16, CUDA).meta["ON_CHIP"]
    assert not launch.plan(4, 128, 16, torch.bfloat16, CUDA).meta["ON_CHIP"]
    assert launch.plan(1, 128, 16, torch.float32, CUDA).meta["ON_CHIP"]
    monkeypatch.setenv("RNNLAB_ON_CHIP_BYTES", "128k")
    with pytest.raises(ValueError, match="RNNLAB_ON_CHIP_BYTES"):
        launch.plan(4, 64, 16, torch.bfloat16, CUDA)


def test_widest_batch_tile_can_be_set_for_comparisons(monkeypatch, launch):
    monkeypatch.delenv("RNNLAB_MAX_BLOCK_B", raising=False)
    assert launch.plan(4, 512, 64, torch.float32, CUDA).meta["BLOCK_B"] == 64  # MAX_BLOCK_B[4]
    assert launch.plan(3, 512, 64, torch.float32, CUDA).meta["BLOCK_B"] == 16  # MAX_BLOCK_B[3]
    monkeypatch.setenv("RNNLAB_MAX_BLOCK_B", "16")
    assert launch.plan(4, 512, 64, torch.float32, CUDA).meta["BLOCK_B"] == 16
    monkeypatch.setenv("RNNLAB_MAX_BLOCK_B", "64")
    assert launch.plan(3, 512, 64, torch.float32, CUDA).meta["BLOCK_B"] == 64
    assert launch.plan(3, 512, 20, torch.float32, CUDA).meta["BLOCK_B"] == 32  # the batch, rounded up
    for bad in ("48", "sixteen"):
        monkeypatch.setenv("RNNLAB_MAX_BLOCK_B", bad)
        with pytest.raises(ValueError, match="RNNLAB_MAX_BLOCK_B"):
            launch.plan(4, 512, 64, torch.float32, CUDA)


def test_resident_bound_can_be_set_for_comparisons(monkeypatch, launch):
    monkeypatch.setenv("RNNLAB_TILE", "64,32,4,3")  # 64-column tiles: 4 x 128 x 64 elements of W_hh each
    monkeypatch.delenv("RNNLAB_RESIDENT_ELEMENTS", raising=False)
    assert not launch.plan(4, 128, 16, torch.float32, CUDA).meta["RESIDENT"]  # over RESIDENT_ELEMENTS
    monkeypatch.setenv("RNNLAB_RESIDENT_ELEMENTS", "32768")
    plan = launch.plan(4, 128, 16, torch.float32, CUDA)
    assert plan.meta["RESIDENT"] and plan.grid == (1, 2)
    monkeypatch.setenv("RNNLAB_RESIDENT_ELEMENTS", "32k")
    with pytest.raises(ValueError, match="RNNLAB_RESIDENT_ELEMENTS"):
        launch.plan(4, 128, 16, torch.float32, CUDA)


def test_resident_state_bound_can_be_set_for_comparisons(monkeypatch, launch):
    """fp16 LSTM at H = 768 (BH 1024) streams W_hh by default; its 16-column slices (4 x 1024 x 16 elements)
    become resident only with both bounds raised, the slice's and the state tile's (16 x 1024)."""
    for name in ("RNNLAB_TILE", "RNNLAB_RESIDENT_ELEMENTS", "RNNLAB_RESIDENT_STATE"):
        monkeypatch.delenv(name, raising=False)
    assert not launch.plan(4, 768, 16, torch.float16, CUDA).meta["RESIDENT"]
    monkeypatch.setenv("RNNLAB_RESIDENT_ELEMENTS", "65536")
    assert not launch.plan(4, 768, 16, torch.float16, CUDA).meta["RESIDENT"]  # the state tile is over
    monkeypatch.setenv("RNNLAB_RESIDENT_STATE", "16384")
    plan = launch.plan(4, 768, 16, torch.float16, CUDA)
    assert plan.meta["RESIDENT"] and plan.meta["BLOCK_K"] == 1024 and plan.grid == (1, 48)
    monkeypatch.setenv("RNNLAB_RESIDENT_STATE", "lots")
    with pytest.raises(ValueError, match="RNNLAB_RESIDENT_STATE"):
        launch.plan(4, 768, 16, torch.float16, CUDA)


def fallbacks(plan) -> list:
    """The plans ``launch.run`` falls back to, in order, where a card refuses the one before, checked
    step by step: on chip -> split; resident -> streamed, same batch tiles; streamed with 32 or 64 rows
    -> 16 rows (resident where one slice per program then fits); 16-row streamed -> 2 pipeline stages,
    then 1; one stage: the end."""
    chain = []
    while plan.fallback is not None:
        before, plan = plan.meta, plan.fallback
        if before["ON_CHIP"]:
            assert not plan.meta["ON_CHIP"]
        elif before["RESIDENT"]:
            assert not plan.meta["RESIDENT"] and plan.meta["BLOCK_B"] == before["BLOCK_B"]
        elif before["BLOCK_B"] > 16:
            assert plan.meta["BLOCK_B"] == 16  # (16-row plans may be resident)
        else:
            assert plan.meta["num_stages"] == (2 if before["num_stages"] > 2 else 1)
            assert {k: v for k, v in plan.meta.items() if k != "num_stages"} == {
                k: v for k, v in before.items() if k != "num_stages"
            }
        chain.append(plan)
    last = chain[-1].meta if chain else None
    assert last is None or not (last["ON_CHIP"] or last["RESIDENT"] or last["BLOCK_B"] > 16)
    assert last is None or last["num_stages"] == 1
    return chain


class _Refusing:
    """A stand-in for a compiled kernel on a card with less shared memory than some plans need: Triton
    refuses such a launch with OutOfResources before it starts. ``refuse(meta)`` says which; records the
    launches it accepts as (grid, SYNC, STEPS) and counts the refusals."""

    def __init__(self, refuse):
        self.refuse, self.launched, self.refused = refuse, [], 0

    def __getitem__(self, grid):
        def launch_kernel(*args, **meta):
            from triton.runtime.errors import OutOfResources

            if self.refuse(meta):
                self.refused += 1
                raise OutOfResources(144 * 1024, 99 * 1024, "shared memory")
            self.launched.append((grid, meta["SYNC"], args[-1]))

        return launch_kernel


@pytest.mark.parametrize(
    "gates, hidden, batch, dtype, refuse, lands",
    [
        # LSTM bf16 backward with 64-row tiles: 144 KB compiled for sm_89 / sm_120 (99 KB cards)
        (4, 512, 64, torch.bfloat16, lambda m: m["BLOCK_B"] > 16, dict(BLOCK_B=16, RESIDENT=False)),
        # a resident slice refused: the same rows, streamed
        (4, 128, 16, torch.float32, lambda m: m["RESIDENT"], dict(BLOCK_B=16, RESIDENT=False)),
        # AMD MI300 (64 KB): LSTM bf16's 16-row backward with 4 stages needs 72 KB, with 2 stages 16 KB
        (4, 512, 16, torch.bfloat16, lambda m: m["num_stages"] > 2, dict(BLOCK_B=16, num_stages=2)),
        # from 64-row tiles with 4 stages to 16 rows, then one stage
        (4, 512, 64, torch.bfloat16, lambda m: m["num_stages"] > 1, dict(BLOCK_B=16, num_stages=1)),
        # on chip, then resident, refused: down the chain to the streamed split path
        (4, 128, 16, torch.bfloat16, lambda m: m["ON_CHIP"] or m["RESIDENT"], dict(RESIDENT=False)),
    ],
)
def test_a_refused_split_plan_falls_back(monkeypatch, launch, gates, hidden, batch, dtype, refuse, lands):
    from rnnlab.kernels import common

    monkeypatch.setattr(common, "interpreted", lambda: False)
    monkeypatch.delenv("RNNLAB_GRID_SYNC", raising=False)
    monkeypatch.setattr(launch, "_NO_ROOM", set())
    plan = launch.plan(gates, hidden, batch, dtype, CUDA)
    assert refuse(plan.meta)
    landed = next(p for p in fallbacks(plan) if not refuse(p.meta))
    assert all(landed.meta[k] == v for k, v in lands.items())
    kernel = _Refusing(refuse)
    args = (torch.zeros(1),)
    for _ in range(2):  # the second call goes straight to the plan that was accepted
        launch.run(kernel, plan, 5, args, exchange=(batch, gates * hidden), phased=True)
    assert kernel.refused == fallbacks(plan).index(landed) + 1
    assert kernel.launched == [(landed.grid, landed.sync, 5)] * 2


class _SmallDevice:
    """A stand-in for a compiled kernel on a card with less shared memory than the on-chip kernel needs:
    Triton refuses such a launch with OutOfResources before it starts. Records the launches it accepts."""

    def __init__(self):
        self.launched, self.refused = [], 0

    def __getitem__(self, grid):
        def launch_kernel(*args, ON_CHIP, **meta):
            from triton.runtime.errors import OutOfResources

            if ON_CHIP:
                self.refused += 1
                raise OutOfResources(212 * 1024, 99 * 1024, "shared memory")
            self.launched.append((grid, meta["SYNC"], args[-1]))

        return launch_kernel


def test_on_chip_plan_falls_back_to_the_split_path_where_shared_memory_is_short(monkeypatch, launch):
    from rnnlab.kernels import common

    monkeypatch.setattr(common, "interpreted", lambda: False)
    monkeypatch.delenv("RNNLAB_GRID_SYNC", raising=False)
    plan = launch.plan(4, 128, 16, torch.bfloat16, torch.device("cpu"))
    assert plan.meta["ON_CHIP"] and plan.fallback.sync
    kernel = _SmallDevice()
    args = (torch.zeros(1),)
    for _ in range(2):  # the second call goes to the fallback without trying the on-chip kernel again
        launch.run(kernel, plan, 7, args, exchange=(16, 128))
    assert kernel.refused == 1
    assert kernel.launched == [(plan.fallback.grid, True, 7)] * 2  # one launch, all 7 steps, grid barrier
    monkeypatch.setattr(launch, "_NO_ROOM", set())
    with pytest.raises(Exception, match="shared memory"):  # a forced on-chip plan has nowhere to go
        forced = launch.plan(4, 128, 16, torch.bfloat16, torch.device("cpu"), block_h=128)
        launch.run(kernel, forced, 7, args, exchange=(16, 128))


def test_grid_barrier_only_on_a_gpu_and_only_when_allowed(monkeypatch, launch):
    from rnnlab.kernels import common

    monkeypatch.setattr(common, "interpreted", lambda: True)  # programs run one after another: no barrier
    assert launch.plan(4, 512, 16, torch.float32, CUDA).sync is False
    monkeypatch.setattr(common, "interpreted", lambda: False)
    assert launch.plan(4, 512, 16, torch.float32, CUDA).sync is True
    monkeypatch.setenv("RNNLAB_GRID_SYNC", "0")
    plan = launch.plan(4, 512, 16, torch.float32, CUDA)
    assert plan.sync is False and plan.grid[1] > 1 and not plan.one_launch  # step-by-step launches


def test_tagged_exchange_only_on_the_resident_path(monkeypatch, launch):
    monkeypatch.delenv("RNNLAB_EXCHANGE", raising=False)
    assert not launch.plan(4, 128, 16, torch.float32, CUDA).tagged  # the barrier by default
    monkeypatch.setenv("RNNLAB_EXCHANGE", "tagged")
    assert launch.plan(4, 128, 16, torch.float32, CUDA).tagged  # resident 16-column slices
    assert not launch.plan(4, 768, 16, torch.bfloat16, CUDA).tagged  # streamed
    assert not launch.plan(4, 64, 16, torch.float32, CUDA).tagged  # on chip (its fallback is split)
    assert launch.plan(4, 64, 16, torch.float32, CUDA).fallback.tagged
    monkeypatch.setenv("RNNLAB_EXCHANGE", "barrier")
    assert not launch.plan(4, 128, 16, torch.float32, CUDA).tagged
    monkeypatch.setenv("RNNLAB_EXCHANGE", "flags")
    with pytest.raises(ValueError, match="RNNLAB_EXCHANGE must be 'barrier' or 'tagged'"):
        launch.plan(4, 128, 16, torch.float32, CUDA)


def test_on_chip_stages_can_be_set_for_comparisons(monkeypatch, launch):
    monkeypatch.delenv("RNNLAB_ON_CHIP_STAGES", raising=False)
    monkeypatch.setenv("RNNLAB_ON_CHIP_BYTES", "196608")  # GRU's fp32 W_hh at H = 128 on chip
    plan = launch.plan(3, 128, 16, torch.float32, CUDA)
    assert plan.meta["ON_CHIP"] and "num_stages" not in plan.meta  # Triton's default
    monkeypatch.setenv("RNNLAB_ON_CHIP_STAGES", "1")
    plan = launch.plan(3, 128, 16, torch.float32, CUDA)
    assert plan.meta["ON_CHIP"] and plan.meta["num_stages"] == 1
    assert "num_stages" not in plan.fallback.meta  # the split plan (resident here) keeps its own
    monkeypatch.setenv("RNNLAB_ON_CHIP_STAGES", "-1")
    with pytest.raises(ValueError, match="RNNLAB_ON_CHIP_STAGES"):
        launch.plan(3, 128, 16, torch.float32, CUDA)


def test_tile_override_is_checked(monkeypatch, launch):
    monkeypatch.setenv("RNNLAB_TILE", "0,32,4,3")
    plan = launch.plan(4, 512, 16, torch.float32, CUDA)
    assert (plan.meta["BLOCK_N"], plan.meta["BLOCK_K"], plan.meta["num_warps"]) == (16, 32, 4)
    monkeypatch.setenv("RNNLAB_TILE", "64,32,4,3")
    plan = launch.plan(4, 512, 16, torch.float32, CUDA)
    assert plan.meta["BLOCK_N"] == 64 and plan.grid == (1, 8)
    monkeypatch.setenv("RNNLAB_TILE", "32x4")
    with pytest.raises(ValueError, match="RNNLAB_TILE"):
        launch.plan(4, 512, 16, torch.float32, CUDA)


def test_plans_are_remembered_and_follow_what_they_depend_on(monkeypatch, launch):
    monkeypatch.delenv("RNNLAB_PREFETCH", raising=False)
    first = launch.plan(4, 512, 16, torch.float32, CUDA)
    assert launch.plan(4, 512, 16, torch.float32, CUDA) is first and first.meta["PREFETCH"]
    with pytest.raises(TypeError):
        first.meta["BLOCK_N"] = 64  # shared between calls: read-only
    monkeypatch.setenv("RNNLAB_PREFETCH", "0")
    assert not launch.plan(4, 512, 16, torch.float32, CUDA).meta["PREFETCH"]
    monkeypatch.setattr(launch, "num_sms", lambda device: 8)
    assert launch.plan(4, 512, 16, torch.float32, CUDA).grid == (1, 8) != first.grid
    monkeypatch.setitem(launch.MAX_BLOCK_B, 4, 16)
    assert launch.plan(4, 512, 64, torch.float32, CUDA).meta["BLOCK_B"] == 16


@pytest.mark.parametrize("gates", [1, 3, 4])
@pytest.mark.parametrize("batch", [1, 17, 64, 256, 5000])
@pytest.mark.parametrize("hidden", [64, 128, 200, 768, 2048])
def test_split_plans_leave_room_for_the_other_direction(monkeypatch, launch, gates, batch, hidden):
    """RNNLAB_BIDIR_STREAMS=1 runs two directions' kernels at once on two CUDA streams. A split plan's
    programs wait for each other every step, so both grids must be resident together: each may fill at
    most half the SMs (every split program, its fallback's included, may need a whole SM). Plans on chip
    and plans on the CPU are unchanged."""
    from rnnlab.kernels import common

    monkeypatch.setattr(common, "interpreted", lambda: False)
    monkeypatch.delenv("RNNLAB_GRID_SYNC", raising=False)
    monkeypatch.delenv("RNNLAB_BIDIR_STREAMS", raising=False)
    alone = launch.plan(gates, hidden, batch, torch.bfloat16, CUDA)
    on_cpu = launch.plan(gates, hidden, batch, torch.bfloat16, torch.device("cpu"))
    monkeypatch.setenv("RNNLAB_BIDIR_STREAMS", "1")
    shared = launch.plan(gates, hidden, batch, torch.bfloat16, CUDA)
    assert launch.plan(gates, hidden, batch, torch.bfloat16, torch.device("cpu")) == on_cpu
    for plan in (shared, *fallbacks(shared)):
        if plan.sync:
            assert plan.grid[0] * plan.grid[1] <= 132 // 2
    assert shared.meta["ON_CHIP"] == alone.meta["ON_CHIP"]
    if alone.meta["ON_CHIP"]:
        assert shared.grid == alone.grid
    if (gates, hidden, batch) == (4, 2048, 1):  # one batch tile: 128 programs alone, 64 wider ones shared
        assert alone.grid == (1, 128) and shared.grid == (1, 64) and shared.meta["BLOCK_N"] == 32


def test_fast_math_only_when_compiled_for_an_nvidia_gpu(monkeypatch):
    """The forward kernels' PTX activations (common.fast_math): not under the interpreter (it cannot run
    PTX), not on ROCm, not with RNNLAB_FAST_MATH=0; on otherwise."""
    from rnnlab.kernels import common

    monkeypatch.delenv("RNNLAB_FAST_MATH", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert not common.fast_math()
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(torch.version, "hip", None)
    assert common.fast_math()
    monkeypatch.setenv("RNNLAB_FAST_MATH", "0")
    assert not common.fast_math()
    monkeypatch.delenv("RNNLAB_FAST_MATH")
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert not common.fast_math()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_forward_kernels_get_fast_math_and_backward_kernels_do_not(monkeypatch, cell):
    """Each forward launch passes FAST = common.fast_math(); the backward launches pass no FAST (their
    kernels recompute with the ordinary lowering)."""
    from kernel_cases import Case, draw_inputs, run
    from rnnlab.kernels import common, launch

    launched = []
    real_run = launch.run

    def recording(kernel, plan, steps, args, **kwargs):
        launched.append((kernel.fn.__name__, kwargs.get("FAST")))
        if "FAST" in kwargs:
            kwargs["FAST"] = False  # the interpreter cannot run the PTX
        return real_run(kernel, plan, steps, args, **kwargs)

    monkeypatch.setattr(launch, "run", recording)
    monkeypatch.setattr(common, "fast_math", lambda: True)  # as on a GPU; the interpreter then runs FAST off
    case = Case(cell, batch=2, steps=3, hidden=16)
    outputs, leaves = run(case, draw_inputs(case), None, "kernel", torch.float32)
    outputs[0].sum().backward()
    assert launched == [(f"_{cell}_fwd_kernel", True), (f"_{cell}_bwd_kernel", None)]
