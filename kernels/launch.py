"""How a recurrence is launched: which programs run which rows and columns (``Plan``, chosen by ``plan``),
and the launch loop (``run``): one launch for all T steps, or one per step where programs cannot wait for
each other (the interpreter). Design in experiments/kernels/README.md.

Three paths, chosen by size:
- on chip: W_hh fits one program's shared memory (G * BH^2 * itemsize <= ON_CHIP_BYTES, BH = H padded to a
  power of two >= 16); one program per 16 batch rows, state in registers, no communication. Where the
  device has less shared memory than the compiled kernel needs, the launch falls back to the split path.
- split, resident: the H output columns of a batch tile are dealt to up to one program per SM, each owning
  one column tile whose slice of W_hh stays on chip for the launch (the compiler keeps it in shared
  memory, its state tile in registers); the programs of a batch tile meet at a grid barrier every step
  (``device.step_sync``). RNNLAB_EXCHANGE=tagged (a comparison switch until a GPU run has timed it):
  programs pass h (forward) and the gate gradients (backward) as tagged words and wait on the words
  themselves, no barrier (``device.tagged_store``).
- split, streamed: the same, with W_hh re-read from L2 every step in BLOCK_K x BLOCK_N tiles (slices too
  large to keep, or several column tiles per program).

Both directions of a bidirectional layer (a call whose buffers are stacked on a leading axis of 2) run in
one launch, the grid's third axis the direction, where the plan is on chip (``bidir_launch``), or on
every path with RNNLAB_BIDIR_LAUNCH=one, each direction's split plan then filling half the SMs (both
directions' programs wait at their own barriers at once); otherwise once per direction.

A split grid relies on all its programs being resident at once. Kernels that finish on their own (GEMMs,
other streams' work) only delay it; two split grids waiting at the same time on two streams could hold
each other's SMs for ever, so rnnlab's own two-stream mode halves the SMs each plan takes
(``sms_for_a_plan``). A caller running split recurrences on streams of its own at once needs the same
(RNNLAB_BIDIR_STREAMS=1 halves every split plan on CUDA).

Imports no Triton, like ``common``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

import torch

from . import common

BLOCK_B = 16  # batch rows per program on chip; tl.dot needs M >= 16, so smaller batches are padded (masked)
# Rows per program on the tiled path, at most (more rows: fewer re-reads of W_hh per step), by gate count.
# GRU stays at 16: its backward with 64-row tiles gave wrong gradients on an H100 (B=37, H=200, fp16;
# experiments/kernels/README.md, "known problems") while 16-row tiles passed every GPU test.
MAX_BLOCK_B = {1: 64, 3: 16, 4: 64}
# G * BH^2 * itemsize bound for keeping W_hh on chip. The compiler keeps the loop-invariant dot operand W^T
# in shared memory (ldmatrix every step), so the bound is bytes: fp32 LSTM/GRU to H=64, RNN to 128; bf16/fp16
# LSTM/GRU to H=128, RNN to 256. Compiled for sm_90 these use no spill slots with 8 warps at H=128 (LSTM
# bf16: 174 registers; shared memory 136 KB forward, up to 212 KB backward; experiments/kernels/README.md).
ON_CHIP_BYTES = 131072
RESIDENT_ELEMENTS = 16384  # G * BH * BLOCK_N bound for a program's slice of W_hh on the split path
RESIDENT_STATE = 8192  # BLOCK_B * BH bound for the state tile a resident program reads whole each step
FUSED_BACKWARD_BYTES = 131072  # shared memory the fused backward may stage (``_fused``)
TILE_NS = (16, 32, 64)  # tiled path: output columns per tile, the smallest that keeps the grid on the SMs
INTERPRETER_SMS = 4  # programs per batch tile under the interpreter: enough to exercise the split path
_NO_ROOM: set = set()  # (kernel, device, meta) of on-chip launches the device refused: use their fallback


@dataclass(frozen=True)
class Plan:
    """How one forward or backward call is launched.

    grid = (batch tiles, column programs). On chip: one program per batch tile, one launch. Tiled: the H
    output columns of each batch tile are split across ``grid[1]`` programs (tiles of BLOCK_N columns, dealt
    round-robin); every step each reads the whole previous state and writes its own columns. Programs of a
    batch tile then meet at a grid barrier (``sync``: one launch for all T steps, possible on a GPU because
    the grid is sized to fit the SMs at once), or, under the interpreter (which runs programs one after
    another) or with RNNLAB_GRID_SYNC=0, each step is its own launch (the launch boundary is the barrier).
    ``fallback``: the plan ``run`` launches instead when this one's kernel needs more shared memory than
    the device has (Triton refuses it with OutOfResources before it starts; an H100 has 227 KB a program,
    an A100 163 KB, most consumer cards 99 KB): on chip -> split; split resident -> streamed; streamed
    with 32- or 64-row batch tiles -> 16-row tiles (resident where that fits); 16-row streamed -> 2
    pipeline stages, then 1; one stage: none. Compiled for sm_86, sm_89 and sm_120 (99 KB), LSTM's
    bf16/fp16 backward with 64-row tiles needs 144 KB; for AMD's MI300 (64 KB) its backward with 16-row,
    32-column tiles and 4 stages needs 72 KB (experiments/kernels/README.md, "Other GPUs and Triton
    versions").
    """

    grid: tuple[int, int]
    meta: Mapping[str, object]  # read-only: plans are shared (``plan`` remembers them)
    sync: bool
    fallback: Plan | None = None
    tagged: bool = False  # resident: the step's exchange as tagged words instead of through the barrier
    directions: int = 1  # 2: both directions of a bidirectional layer in one launch (grid's third axis)

    @property
    def one_launch(self) -> bool:
        return self.sync or self.grid[1] == 1


def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return INTERPRETER_SMS


def bidir_streams() -> bool:
    """RNNLAB_BIDIR_STREAMS=1: a bidirectional layer's two directions run on two CUDA streams at once
    (``rnnlab.streams``; a comparison switch until a GPU run has timed it)."""
    return os.environ.get("RNNLAB_BIDIR_STREAMS", "0") == "1"


def bidir_launch() -> str:
    """How a call holding both directions of a bidirectional layer launches (``plan``'s ``directions``):
    "auto" (default): in one launch where its plan is on chip (one program per batch tile and direction,
    no barrier: the two directions' programs simply run side by side), otherwise once per direction, each
    launch with every SM for its split plan; "one": always one launch, split plans then filling half the
    SMs each; "separate": always once per direction, as before both directions could share a launch.
    RNNLAB_BIDIR_LAUNCH sets it; "one" on the split path is a comparison switch until a GPU run has timed
    it."""
    spec = os.environ.get("RNNLAB_BIDIR_LAUNCH") or "auto"
    if spec not in ("auto", "one", "separate"):
        raise ValueError(f"RNNLAB_BIDIR_LAUNCH must be 'auto', 'one' or 'separate', got {spec!r}")
    return spec


def both_directions_at_once(gates: int, hidden: int, dtype: torch.dtype) -> bool:
    """Whether a call holding both directions (``plan``'s ``directions`` = 2) runs them in one launch: what
    ``plan`` decides, without making the plan (the layers ask while torch.compile traces them, where
    nothing here should touch the device). Where it would not, a caller gains nothing by stacking them and
    pays memory: a stacked call's backward holds both directions' buffers at once, where two calls free
    the first direction's before the second runs (experiments/kernels/README.md, "Both directions in one
    launch")."""
    how = bidir_launch()
    return how == "one" or (how == "auto" and _fits_on_chip(gates, hidden, dtype, on_chip_bytes()))


def _fits_on_chip(gates: int, hidden: int, dtype: torch.dtype, bound: int) -> bool:
    """W_hh, padded to a power of two >= 16 square per gate, within ``bound`` bytes (ON_CHIP_BYTES)."""
    padded = max(16, common.triton_next_power_of_2(hidden))
    return gates * padded * padded * dtype.itemsize <= bound


def sms_for_a_plan(device: torch.device) -> int:
    """The SMs one split plan may fill: all of them, or half where ``bidir_streams`` runs two directions'
    kernels at once. A split plan's programs wait for each other every step, so all of them must be
    resident together; two such grids of up to every SM each, on two streams, could each hold SMs the
    other's waiting programs need and never finish. Two grids of half the SMs fit side by side."""
    sms = num_sms(device)
    return max(1, sms // 2) if device.type == "cuda" and bidir_streams() else sms


def resident_allowed() -> bool:
    """A switch for comparisons: RNNLAB_RESIDENT=0 streams W_hh from L2 every step even where it would fit."""
    return os.environ.get("RNNLAB_RESIDENT", "1") != "0"


def resident_elements() -> int:
    """RESIDENT_ELEMENTS, or RNNLAB_RESIDENT_ELEMENTS for comparisons (32768 with RNNLAB_TILE=64,... gives
    fp32 LSTM at H=128 two resident programs per batch tile instead of eight)."""
    return _int_knob("RNNLAB_RESIDENT_ELEMENTS", RESIDENT_ELEMENTS, "elements")


def resident_state() -> int:
    """RESIDENT_STATE, or RNNLAB_RESIDENT_STATE for comparisons (16384, with RNNLAB_RESIDENT_ELEMENTS=65536,
    lets LSTM at H=768 (BH 1024) hold its 16-column slices of W_hh: bf16/fp16 only, 192 KB of shared memory
    on sm_90)."""
    return _int_knob("RNNLAB_RESIDENT_STATE", RESIDENT_STATE, "elements")


def on_chip_bytes() -> int:
    """ON_CHIP_BYTES, or RNNLAB_ON_CHIP_BYTES for comparisons (65536 gives the earlier bound: bf16/fp16
    LSTM and GRU on chip only to H=64)."""
    return _int_knob("RNNLAB_ON_CHIP_BYTES", ON_CHIP_BYTES, "bytes")


def on_chip_stages() -> int:
    """0 (Triton's default pipelining), or RNNLAB_ON_CHIP_STAGES for comparisons: the on-chip kernels'
    num_stages. With 1, GRU's fp32 backward at H = 128 needs 224 KB of shared memory on sm_90 instead of
    336 KB, within an H100's 227 KB, so with RNNLAB_ON_CHIP_BYTES=196608 both its directions run on chip
    (experiments/kernels/README.md)."""
    stages = _int_knob("RNNLAB_ON_CHIP_STAGES", 0, "pipeline stages")
    if stages < 0:
        raise ValueError(f"RNNLAB_ON_CHIP_STAGES must be 0 (Triton's default) or more, got {stages}")
    return stages


def _int_knob(name: str, default: int, unit: str) -> int:
    """The integer in environment variable ``name``, or ``default`` where it is unset or empty."""
    spec = os.environ.get(name)
    if not spec:
        return default
    try:
        return int(spec)
    except ValueError:
        raise ValueError(f"{name} must be an integer number of {unit}, got {spec!r}") from None


def max_block_b(gates: int) -> int:
    """MAX_BLOCK_B[gates], or RNNLAB_MAX_BLOCK_B (16, 32 or 64) for comparisons: the widest batch tile of
    the split path, for every cell."""
    spec = os.environ.get("RNNLAB_MAX_BLOCK_B")
    if not spec:
        return MAX_BLOCK_B[gates]
    if spec not in ("16", "32", "64"):
        raise ValueError(f"RNNLAB_MAX_BLOCK_B must be 16, 32 or 64 (batch rows per program), got {spec!r}")
    return int(spec)


def prefetch_allowed() -> bool:
    """A switch for comparisons: RNNLAB_PREFETCH=0 loads each step's inputs (gx forward; the saved gates,
    states and output gradient backward) in that step instead of one step ahead (on chip and resident)."""
    return os.environ.get("RNNLAB_PREFETCH", "1") != "0"


def exchange_tagged() -> bool:
    """RNNLAB_EXCHANGE=tagged: on the resident split path the kernels pass h (forward) and the gate
    gradients (backward) between programs as (step, value) words and poll those (``device.tagged_load``)
    instead of meeting at the grid barrier, which saves the barrier's fence and counter round trips
    through L2 every step. "barrier" (default) keeps the barrier. A comparison switch until a GPU run has
    timed it."""
    spec = os.environ.get("RNNLAB_EXCHANGE") or "barrier"
    if spec not in ("barrier", "tagged"):
        raise ValueError(f"RNNLAB_EXCHANGE must be 'barrier' or 'tagged', got {spec!r}")
    return spec == "tagged"


def fused_gates() -> bool:
    """RNNLAB_FUSED_GATES=1: LSTM's and GRU's split path computes all gates' recurrent products as one
    instead of one product per gate: the forward (resident and streamed) h @ the gates' W^T slices side
    by side (``device.load_wt_gates``), the resident backward one batched product over the gates
    (``device.gate_product``; where: ``_fused``). A 16-column tile's per-gate products are too narrow for
    Triton to deal across warps, so every warp issues all of them; compiled for sm_90, the fused forward
    of LSTM fp32 at H = 128 issues a quarter of the MMAs per warp (experiments/kernels/README.md). A
    comparison switch until a GPU run has timed it."""
    spec = os.environ.get("RNNLAB_FUSED_GATES") or "0"
    if spec not in ("0", "1"):
        raise ValueError(f"RNNLAB_FUSED_GATES must be 0 or 1, got {spec!r}")
    return spec == "1"


def grid_sync_allowed() -> bool:
    """A switch for debugging: RNNLAB_GRID_SYNC=0 launches the split path step by step instead."""
    return not common.interpreted() and os.environ.get("RNNLAB_GRID_SYNC", "1") != "0"


def plan(
    gates: int,
    hidden: int,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    block_h: int = 0,
    allow_on_chip: bool = True,
    directions: int = 1,
) -> Plan:
    """The launch plan of a cell with ``gates`` gates of width ``hidden`` over ``batch`` rows.

    ``directions`` = 2: the call holds both directions of a bidirectional layer (``run``'s stacked
    arguments). The plan has ``directions`` 2 where both run in one launch (``bidir_launch``; its split
    plans, fallbacks included, then fill half the SMs, so that both directions' programs are resident
    together), else 1: one launch per direction, each with this one-direction plan.

    ``block_h`` > 0 forces square tiles of that size (a power of two >= 16; tests use it to run the tiled
    path at small H); the on-chip path is taken when one tile covers H. ``allow_on_chip=False``: the split
    path even where W_hh would fit on chip (the fallback of an on-chip plan).

    Plans are remembered (two are made per forward and backward call: host time for every step of a
    short sequence). Everything a plan reads from outside its arguments is resolved first into
    ``_Settings`` and is part of the cache key; the geometry bounds above are constants.
    """
    how = bidir_launch() if directions == 2 else "separate"
    together = how != "separate"
    settings = _Settings(
        sms=sms_for_a_plan(device) // (2 if together else 1),
        interpreted=common.interpreted(),
        precision=common.dot_precision(dtype),
        on_chip_bytes=on_chip_bytes(),
        on_chip_stages=on_chip_stages(),
        resident=resident_allowed(),
        resident_elements=resident_elements(),
        resident_state=resident_state(),
        tile=tuple(_tile_override().items()),
        prefetch=prefetch_allowed(),
        grid_sync=grid_sync_allowed(),
        widest=max_block_b(gates),
        tagged=exchange_tagged(),
        fused=fused_gates(),
        stages=0,
        directions=2 if together else 1,
    )
    made = _make_plan(gates, hidden, batch, dtype, block_h, allow_on_chip, settings)
    if together and how == "auto" and not made.meta["ON_CHIP"]:  # split: a launch per direction
        settings = settings._replace(sms=sms_for_a_plan(device), directions=1)
        made = _make_plan(gates, hidden, batch, dtype, block_h, allow_on_chip, settings)
    return made


class _Settings(NamedTuple):
    """The environment of a plan: the SMs it may fill (``sms_for_a_plan``), the interpreter, the fp32 dot
    precision, the RNNLAB_* knobs (on-chip bytes and stages, resident and its two bounds, tile override,
    prefetch, grid sync, widest batch tile, tagged exchange, fused gates), the streamed path's cap on
    pipeline stages (0: none; a fallback's, ``Plan.fallback``), and the directions in one launch."""

    sms: int
    interpreted: bool
    precision: str
    on_chip_bytes: int
    on_chip_stages: int
    resident: bool
    resident_elements: int
    resident_state: int
    tile: tuple
    prefetch: bool
    grid_sync: bool
    widest: int
    tagged: bool
    fused: bool
    stages: int
    directions: int


@functools.lru_cache(maxsize=4096)
def _make_plan(gates, hidden, batch, dtype, block_h, allow_on_chip, settings: _Settings) -> Plan:
    padded = max(16, common.triton_next_power_of_2(hidden))
    if block_h and (block_h < 16 or block_h & (block_h - 1)):
        raise ValueError(f"block_h must be a power of two >= 16, got {block_h}")
    fits = _fits_on_chip(gates, hidden, dtype, settings.on_chip_bytes)
    on_chip = block_h >= padded if block_h else allow_on_chip and fits
    if on_chip:
        block_b, block_n, block_k, n_progs = BLOCK_B, padded, padded, 1
        b_tiles = -(-batch // block_b)
    else:
        widest = settings.widest
        block_b = BLOCK_B if block_h else min(widest, max(BLOCK_B, common.triton_next_power_of_2(batch)))
        b_tiles = -(-batch // block_b)
        per_tile = max(1, settings.sms // b_tiles)  # programs of one batch tile that fit beside the rest
        # BLOCK_K, warps, stages of the streamed path; RNNLAB_TILE replaces them, not tests' forced tiles
        tiles = {**_streamed_tiles(block_b, dtype), **({} if block_h else dict(settings.tile))}
        if settings.stages:
            tiles["num_stages"] = min(tiles["num_stages"], settings.stages)
        if block_h:
            block_n = block_k = block_h
        else:
            fitting = next((n for n in TILE_NS if -(-hidden // n) <= per_tile), TILE_NS[-1])
            block_n = tiles.pop("BLOCK_N", None) or fitting
            block_k = tiles["BLOCK_K"]
        n_progs = min(-(-hidden // block_n), per_tile)
    # Resident: each program owns exactly one column tile and its slice of W_hh (G x padded H x BLOCK_N)
    # fits beside the state, so the slice is loaded once per launch instead of re-read every step. The
    # whole previous state (BLOCK_B x padded H) is then read as one tile, which bounds it too.
    resident = (
        not on_chip
        and n_progs == -(-hidden // block_n)
        and gates * padded * block_n <= settings.resident_elements
        and block_b * padded <= settings.resident_state
        and settings.resident
    )
    if resident:
        block_k = padded
    meta = dict(
        ON_CHIP=on_chip,
        RESIDENT=resident,
        PREFETCH=settings.prefetch,
        BLOCK_B=block_b,
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        PRECISION=settings.precision,
        UPCAST=settings.interpreted and dtype == torch.bfloat16,  # see kernels/device.py: dot
    )
    if gates > 1:  # (the RNN's kernels have no FUSED: one gate)
        meta["FUSED"] = _fused(settings.fused and not on_chip, resident, block_b, block_n, block_k, dtype)
    if on_chip or resident:
        meta["num_warps"] = resident_warps(gates, block_n, block_k)
        if on_chip and settings.on_chip_stages:
            meta["num_stages"] = settings.on_chip_stages
    else:
        meta.update({**tiles, "BLOCK_K": block_k})
    smaller = None if block_h else _fallback_settings(settings, meta)  # forced tiles: nowhere else to go
    fallback = None if smaller is None else _make_plan(gates, hidden, batch, dtype, block_h, False, smaller)
    sync = n_progs > 1 and settings.grid_sync
    tagged = resident and settings.tagged
    return Plan(
        (b_tiles, n_progs), MappingProxyType(meta), sync, fallback, tagged, directions=settings.directions
    )


def _fallback_settings(settings: _Settings, meta: Mapping[str, object]) -> _Settings | None:
    """The settings of the next smaller plan (``Plan.fallback``, made without the on-chip path) after the
    plan of ``meta``, or None after the last: on chip -> split; resident -> streamed; 32 or 64 rows -> 16;
    then fewer loads in flight (less shared memory), 2 pipeline stages, then 1."""
    if meta["ON_CHIP"]:
        return settings
    if meta["RESIDENT"]:
        return settings._replace(resident=False)
    if meta["BLOCK_B"] > BLOCK_B:
        return settings._replace(widest=BLOCK_B)
    if meta["num_stages"] > 1:
        return settings._replace(stages=2 if meta["num_stages"] > 2 else 1)
    return None


def _fused(on: bool, resident: bool, block_b: int, block_n: int, block_k: int, dtype: torch.dtype) -> int:
    """FUSED of a split LSTM/GRU plan (``fused_gates``): 0 off, 1 the forward's product fused (resident
    and streamed), 2 the resident backward's too. Compiled for sm_90 (experiments/kernels/README.md):

    - the resident backward's batched product pays only at 16 columns, where each per-gate product is too
      narrow to share among the warps; at H = 128 fp32 it issues more instructions than the per-gate
      products at 32 columns and spills at 64. It stages all four gates' gradient tiles and W slices in
      shared memory at once, 4 * BLOCK_K * (BLOCK_B + BLOCK_N) elements (exactly its shared memory), so
      it is taken only within FUSED_BACKWARD_BYTES: a resident plan has no fallback to catch a refusal;
    - the streamed backward keeps its per-gate products: batched per K tile it issued as many
      instructions or more (LSTM fp32 B=8 H=2048: 579 against 568 a tile; B=256, where the batched
      product loses wgmma: 1571 against 984)."""
    if not on:
        return 0
    if not resident:
        return 1
    staged = 4 * block_k * (block_b + block_n) * dtype.itemsize
    return 2 if block_n == 16 and staged <= FUSED_BACKWARD_BYTES else 1


def resident_warps(gates: int, block_n: int, block_k: int) -> int:
    """Warps of a program holding its W_hh (on chip or a resident slice): 8 past 8192 elements of it."""
    return 8 if gates * block_n * block_k > 8192 else 4


def _streamed_tiles(block_b: int, dtype: torch.dtype) -> dict:
    """BLOCK_K, warps and pipeline depth of the streamed split path, as measured on an H100
    (experiments/kernels/README.md, "tuning"): bf16/fp16 read W_hh in 64-deep tiles, 4 loads ahead; fp32
    (TF32) keeps the shallower tiles it was measured with (16-row tiles: 4 warps, 3 stages; larger: 8, 2)."""
    if dtype != torch.float32:
        return dict(BLOCK_K=64, num_warps=4, num_stages=4)
    warps, stages = (4, 3) if block_b == BLOCK_B else (8, 2)
    return dict(BLOCK_K=32, num_warps=warps, num_stages=stages)


def _tile_override() -> dict:
    """RNNLAB_TILE="BLOCK_N,BLOCK_K,num_warps,num_stages" replaces the tiled path's choice (BLOCK_N 0: keep
    the automatic one): a knob for tuning runs (see experiments/kernels/README.md), not for normal use."""
    spec = os.environ.get("RNNLAB_TILE")
    if not spec:
        return {}
    try:
        block_n, block_k, warps, stages = (int(v) for v in spec.split(","))
    except ValueError:
        raise ValueError(
            f"RNNLAB_TILE must be 'BLOCK_N,BLOCK_K,num_warps,num_stages' integers, got {spec!r}"
        ) from None
    return dict(BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps, num_stages=stages)


def run(
    kernel,
    plan: Plan,
    steps: int,
    args: tuple,
    *,
    exchange: tuple,
    phased: bool = False,
    directions: int = 1,
    shared: tuple = (),
    **constexprs,
) -> None:
    """Run ``kernel[grid](*args, counter, xch, S0, STEPS, TAGGED, **constexprs, **meta)`` over all ``steps``.

    ``directions`` = 2: every tensor of ``args`` but those in ``shared`` (the lengths) holds both directions
    of a bidirectional layer, stacked on a leading axis, direction 1 the reverse one. With a plan of two
    directions that is one launch, the grid's third axis the direction and REVERSE = 2 (the kernels find
    their direction's part of each buffer: ``device.directed``); otherwise one launch per direction, on
    its part of each buffer, with REVERSE False then True.

    ``exchange`` = (B, N): with a tagged plan, ``xch`` is the zeroed (2, B, N) int64 words through which
    programs pass what they exchange every step (h forward, N = H; the gate gradients backward, N = G*H:
    ``device.tagged_store``), and there is no barrier; otherwise ``xch`` is None and TAGGED False.
    ``phased`` (the backward kernels): a step has two phases with a barrier between them, so a step-by-step
    launch runs PHASE1 and PHASE2 as two launches. A one-launch kernel the device has no room for runs as
    ``plan.fallback`` (remembered, so later calls go there directly). Step-by-step launches (the
    interpreter, RNNLAB_GRID_SYNC=0) do not fall back: a refusal there could come after a first phase ran."""
    again = dict(exchange=exchange, phased=phased, directions=directions, shared=shared)
    if directions > plan.directions:  # one launch per direction, on its part of each stacked buffer
        for d in range(directions):
            part = tuple(_direction_part(a, d, shared) for a in args)
            this = {**constexprs, "REVERSE": d == 1}
            run(kernel, plan, steps, part, exchange=exchange, phased=phased, **this)
        return
    grid, meta, device = plan.grid, plan.meta, args[0].device
    if plan.directions == 2:
        constexprs["REVERSE"] = 2  # device.time_index: the direction from the grid's third axis
        grid = (*grid, 2)
    refused = None if plan.fallback is None else (kernel, device, tuple(sorted(meta.items())))
    if plan.one_launch and refused in _NO_ROOM:
        return run(kernel, plan.fallback, steps, args, **again, **constexprs)
    xch = (
        torch.zeros((2 * plan.directions, *exchange), dtype=torch.int64, device=device)
        if plan.tagged
        else None
    )
    if plan.one_launch:
        sync = plan.sync and not plan.tagged  # the tagged words replace the barrier
        counter = torch.zeros(grid[0] * plan.directions, dtype=torch.int32, device=device) if sync else None
        phases = dict(PHASE1=True, PHASE2=True) if phased else {}
        try:
            kernel[grid](
                *args, counter, xch, 0, steps, SYNC=sync, TAGGED=plan.tagged, **phases, **constexprs, **meta
            )
        except Exception as err:
            from triton.runtime.errors import OutOfResources  # raised before the kernel starts

            if refused is None or not isinstance(err, OutOfResources):
                raise
            _NO_ROOM.add(refused)
            run(kernel, plan.fallback, steps, args, **again, **constexprs)
        return
    halves = (dict(PHASE1=True, PHASE2=False), dict(PHASE1=False, PHASE2=True)) if phased else ({},)
    for s in range(steps):
        for phases in halves:
            kernel[grid](
                *args, None, xch, s, 1, SYNC=False, TAGGED=plan.tagged, **phases, **constexprs, **meta
            )


def _direction_part(arg, direction: int, shared: tuple):
    """Direction ``direction``'s part of a kernel argument stacked over both directions: a tensor's slice
    on its leading axis (contiguous where the tensor is), the argument itself for the tensors in ``shared``,
    scalars and None."""
    if isinstance(arg, torch.Tensor) and all(arg is not s for s in shared):
        return arg[direction]
    return arg
