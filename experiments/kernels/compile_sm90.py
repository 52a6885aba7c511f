"""Compile every fused-kernel variant for an H100 (sm_90) without a GPU, and print per variant a hash of its
machine code (SASS, from the cubin, addresses and encodings stripped) and its register / stack use.

    python experiments/kernels/compile_sm90.py > before.txt     # then change the kernels, run again, diff

Identical hashes before and after a change mean the GPU runs the very same instructions (a refactor cannot
have changed speed); the STACK column counts bytes spilled to local memory, SMEM the dynamic shared memory
a program needs (an H100 gives one at most 227 KB). (Triton emits line info, so a change that only adds an
inlined helper can still move ptxas's register allocation: compare the SASS, not the PTX.)

    python experiments/kernels/compile_sm90.py --aligned

compiles as the JIT does for the benchmark's rows (B=8 aside): pointers 16-byte aligned and B, H multiples
of 16, so it vectorizes the state and gate accesses (without --aligned: the code for an odd H, such as 200).
``--no-prefetch`` compiles the kernels as RNNLAB_PREFETCH=0 runs them; ``--both-directions`` as a
bidirectional layer's two directions run in one launch (REVERSE=2: each program finds its direction from
the grid); ``--plain`` as a call without lengths runs them, with the inference forward (SAVE=False), GRU
without biases, the RNN with relu and fp16 for bf16: the other side of the switches the sets hold on;
``--loops`` adds what one pass of each kernel's time loop issues (``time_loop``).
``--tile-widths`` compiles only the split path's 16-row tiles at 16, 32 and 64 columns (``tile_widths``).

    python experiments/kernels/compile_sm90.py --loops --rows lstm,16,512,768,768,fp16 \
        --settings default RNNLAB_RESIDENT_ELEMENTS=65536

compiles, aligned, the forward and backward that kernels/launch.py plans for each row (knob_ab.py's
cell,B,T,I,H,dtype) on an H100's 132 SMs under each setting of the RNNLAB_* knobs (knob_ab.py's syntax):
a setting planned for a GPU run is checked here first for spills and for shared memory over 227 KB.

Variants: LSTM, GRU, RNN (tanh) x forward/backward (and backward without a sequence gradient, d_out=None) x
the paths of kernels/launch.py (on chip at BH = 64, and for bf16 also at the largest on-chip BH; split
resident; split streamed with 16- and 64-row tiles) x fp32 (TF32) and bf16, with lengths and a grid barrier.
Uses the installed Triton (its bundled ptxas and cuobjdump); run it with another Triton first on
PYTHONPATH to check that version.

    python experiments/kernels/compile_sm90.py --aligned --arch 89

compiles them for another GPU (compute capability 75, 80, 86, 89, 90, 100 or 120, or AMD's MI300, gfx942:
there a hash of its assembly and the LDS it takes) and marks each variant whose shared memory is over what
a program of that card may take, with what the launcher does when the card refuses it (``over_the_card``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # compile for the GPU, not the interpreter
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset; 1 is its default

import torch  # noqa: E402
import triton  # noqa: E402
from rnnlab.kernels import common, gru, launch, lstm, rnn  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from rnnlab.bench.grid import DTYPES as ROW_DTYPES  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from knob_ab import knobs_set, parse_row, parse_setting  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)  # --arch replaces it
# Shared memory one program may take (bytes, the opt-in maximum per block) by compute capability: T4,
# A100, RTX 30xx / A10 / A40, L4 / L40 / RTX 40xx, H100 / H200, B200, RTX 50xx.
# AMD: LDS a workgroup may take on MI300 (gfx942).
SHARED_LIMIT = {
    "75": 65536,
    "80": 166912,
    "86": 101376,
    "89": 101376,
    "90": 232448,
    "100": 232448,
    "120": 101376,
    "gfx942": 65536,
}
FP32_BUFFERS = {"h_buf", "c_buf", "dh_buf", "dc_buf"}  # the fp32 state scratch
INT32_POINTERS = {"lengths", "counter"}
INT64_POINTERS = {"xch"}  # the tagged exchange's words (RNNLAB_EXCHANGE=tagged)
UNTAGGED = dict(TAGGED=False, xch=None)  # the kernels as launched by default
SCALARS = {"T", "B", "H", "S0", "STEPS"}
CELLS = {  # (FUSED: RNNLAB_FUSED_GATES, off by default; --rows compiles what a setting plans)
    "lstm": (lstm._lstm_fwd_kernel, lstm._lstm_bwd_kernel, {"FUSED": 0}),
    "gru": (gru._gru_fwd_kernel, gru._gru_bwd_kernel, {"HAS_BIAS": True, "FUSED": 0}),
    "rnn": (rnn._rnn_fwd_kernel, rnn._rnn_bwd_kernel, {"ACT": 0}),
}
DTYPES = {"fp32": ("fp32", "tf32"), "bf16": ("bf16", "ieee")}
# --plain: the other side of the switches the sets above hold on, as a call without lengths runs
# (lengths=None), with the inference forward (SAVE=False: GRU's saved buffers then None), GRU without
# biases, the RNN with relu (ACT=1), and fp16 in place of bf16
PLAIN_DTYPES = {"fp32": DTYPES["fp32"], "fp16": ("fp16", "ieee")}
PLAIN = dict(HAS_LENGTHS=False, lengths=None)
PLAIN_CELLS = {"lstm": {}, "gru": {"HAS_BIAS": False, "b": None}, "rnn": {"ACT": 1}}
PLAIN_FORWARD = {"lstm": {"SAVE": False}, "gru": {"SAVE": False, "gates": None, "ghn": None}, "rnn": {}}


def paths(cell: str, dtype: str) -> dict[str, dict]:
    """The launch plans' shapes (kernels/launch.py) for each path, with the streamed tiles of that dtype;
    for bf16 and fp16 also the largest on-chip tile (ON_CHIP_BYTES: LSTM/GRU BH = 128, RNN BH = 256)."""
    block_k, stages = (32, 3) if dtype == "fp32" else (64, 4)
    widest = max(bh for bh in (64, 128, 256, 512) if common.GATES[cell] * bh * bh * 2 <= launch.ON_CHIP_BYTES)
    largest = dict(ON_CHIP=True, RESIDENT=False, BLOCK_B=16, BLOCK_N=widest, BLOCK_K=widest, num_warps=8)
    return {
        "onchip": dict(ON_CHIP=True, RESIDENT=False, BLOCK_B=16, BLOCK_N=64, BLOCK_K=64, num_warps=8),
        **({f"onchip{widest}": largest} if dtype != "fp32" else {}),
        "resident": dict(ON_CHIP=False, RESIDENT=True, BLOCK_B=16, BLOCK_N=16, BLOCK_K=128, num_warps=8),
        "streamed16": dict(
            ON_CHIP=False,
            RESIDENT=False,
            BLOCK_B=16,
            BLOCK_N=32,
            BLOCK_K=block_k,
            num_warps=4,
            num_stages=stages,
        ),
        "streamed64": dict(
            ON_CHIP=False,
            RESIDENT=False,
            BLOCK_B=64,
            BLOCK_N=32,
            BLOCK_K=block_k,
            num_warps=8 if dtype == "fp32" else 4,
            num_stages=2 if dtype == "fp32" else stages,
        ),
    }


def signature(fn, dtype: str, constants: dict) -> dict[str, str]:
    sig = {}
    for name in fn.arg_names:
        if name in constants:
            sig[name] = "constexpr"
        elif name in SCALARS:
            sig[name] = "i32"
        elif name in INT32_POINTERS:
            sig[name] = "*i32"
        elif name in INT64_POINTERS:
            sig[name] = "*i64"
        else:
            sig[name] = "*fp32" if name in FP32_BUFFERS else "*" + dtype
    return sig


LOOP_OPS = ("HMMA", "LDSM", "LDG", "LDGSTS", "STG", "LDL", "STL", "BAR", "LDS")


def time_loop(sass: str) -> str:
    """Instructions a warp issues per pass of the largest loop (the time loop: the barrier's spin loop and the
    streamed path's K loop sit inside it, counted once), with the counts of some opcodes: MMAs, ldmatrix
    from shared memory, global loads/stores, async copies (LDGSTS: loads the compiler pipelines), spill
    reloads/stores, barriers, and (last, added later) plain shared-memory loads (LDS: an operand ldmatrix
    cannot read, such as fp32 W_hh along its rows in the backward before ``common.backward_weight``)."""
    code = []  # (address, opcode, line) per instruction
    for line in sass.splitlines():
        found = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)", line)
        if found:
            code.append((int(found.group(1), 16), found.group(2), line))
    spans = []
    for address, opcode, line in code:
        target = re.search(r"BRA\s+(?:\S+\s+)?(?:`\(\.L_x_\d+\)\s*)?0x([0-9a-f]+)", line)
        if opcode == "BRA" and target and int(target.group(1), 16) < address:
            spans.append((int(target.group(1), 16), address))
    if not spans:
        return "LOOP:none"
    low, high = max(spans, key=lambda span: span[1] - span[0])
    body = [opcode for address, opcode, _ in code if low <= address <= high]
    counts = " ".join(f"{op}:{body.count(op)}" for op in LOOP_OPS)
    return f"LOOP:{len(body)} {counts}"


def compile_variant(fn, dtype: str, settings: dict, aligned: bool = False, loops: bool = False) -> str:
    """'<SASS hash> <registers> <stack> SMEM:<bytes>' of one variant: the machine code the GPU would run
    (and with ``loops`` the instruction counts of its time loop, ``time_loop``)."""
    settings = dict(settings)
    options = {"num_warps": settings.pop("num_warps"), "num_stages": settings.pop("num_stages", 3)}
    constants = {k: v for k, v in settings.items() if k in fn.arg_names}
    sig = signature(fn, dtype, constants)
    hints = {  # what the JIT asserts of arguments divisible by 16 (backends/compiler.py: "D")
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(fn.arg_names)
        if aligned and (sig[name].startswith("*") or name in ("B", "H"))
    }
    if common.triton_problem():  # Triton 3.2 takes hints as an AttrsDescriptor: there, compile without
        hints = None
    kernel = triton.compile(ASTSource(fn, sig, constants, hints), target=TARGET, options=options)
    if TARGET.backend == "hip":  # no SASS: a hash of the AMD GCN assembly, and the LDS it takes
        digest = hashlib.sha256(kernel.asm["amdgcn"].encode()).hexdigest()[:16]
        return f"{digest}  SMEM:{kernel.metadata.shared}"
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(kernel.asm["cubin"])
        f.flush()
        usage = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True).stdout
        sass = subprocess.run([tool, "-sass", f.name], capture_output=True, text=True).stdout
    # instructions only: no addresses or encodings (/* ... */), no headers naming the file
    code = [
        re.sub(r"/\*.*?\*/", "", line).strip() for line in sass.splitlines() if line.strip().startswith("/*")
    ]
    resources = next((line.strip() for line in usage.splitlines() if "REG:" in line), "?")
    digest = hashlib.sha256("\n".join(c for c in code if c).encode()).hexdigest()[:16]
    result = f"{digest}  {' '.join(resources.split()[:2])} SMEM:{kernel.metadata.shared}"
    return f"{result}  {time_loop(sass)}" if loops else result


def kernel_variants(
    fwd, bwd, shared: dict, dtype: str, without_d_out: bool = True, forward: dict | None = None
) -> dict[str, tuple]:
    """{kind: (kernel, its settings)}: the saving forward, the backward, and the backward without a
    sequence gradient (d_out=None), each with the ``shared`` settings; the backward reads W_hh as the
    launcher hands it over for ``dtype`` (W_T: ``common.backward_weight``); the forward with the PTX
    activations on an NVIDIA target (FAST: ``common.fast_math``), and ``forward``'s settings over these
    (--plain: ``PLAIN_FORWARD``)."""
    w_t = common.backward_transposed(torch.float32 if dtype == "fp32" else torch.bfloat16)
    fast = TARGET.backend == "cuda" and common.fast_math()
    variants = {
        "fwd": (fwd, {**shared, "SAVE": True, "FAST": fast, **(forward or {})}),
        "bwd": (bwd, dict(shared, PHASE1=True, PHASE2=True, W_T=w_t)),
    }
    if without_d_out:
        variants["bwd no-d_out"] = (bwd, dict(shared, PHASE1=True, PHASE2=True, W_T=w_t, d_out=None))
    return variants


def tile_widths(loops: bool) -> None:
    """The split path's 16-row tiles at 16, 32 and 64 columns with the warps the plans give them (resident:
    kernels/launch.py's rule; streamed: 4), aligned: how many MMAs each warp issues a step (the 16 x 16
    tile repeats them in every warp) and what the wider tiles cost in registers and shared memory."""
    cases = {
        "fp32 resident": dict(RESIDENT=True, BLOCK_K=128, PRECISION="tf32"),
        "bf16 streamed": dict(RESIDENT=False, BLOCK_K=64, PRECISION="ieee", num_stages=4),
    }
    for cell in ("lstm", "gru"):
        fwd, bwd, cell_constants = CELLS[cell]
        for case, meta in cases.items():
            dtype = case.split()[0]
            for block_n in (16, 32, 64):
                resident = launch.resident_warps(common.GATES[cell], block_n, 128)
                warps = resident if meta["RESIDENT"] else 4
                shared = dict(meta, ON_CHIP=False, BLOCK_B=16, BLOCK_N=block_n, num_warps=warps, SYNC=True)
                shared.update(HAS_LENGTHS=True, REVERSE=False, PREFETCH=True, UPCAST=False, **cell_constants)
                shared.update(UNTAGGED)
                for kind, (fn, settings) in kernel_variants(fwd, bwd, shared, dtype, False).items():
                    label = f"{cell} {kind} {case} BLOCK_N={block_n} {warps}w"
                    print(f"{label:40s} {compile_variant(fn, dtype, settings, True, loops)}", flush=True)


def planned(rows: list, settings: list[dict], loops: bool, limit: int) -> None:
    """The kernels launch.plan gives each row under each knob setting, on an H100 (132 SMs), compiled;
    ``limit``: the target's shared memory a program (``over_the_card``)."""
    for row in rows:
        for knobs in settings:
            with knobs_set(knobs), _h100_sms():  # (kernel_variants reads the backward's W_T and FAST too)
                _compile_planned(row, knobs, loops, limit)


def _compile_planned(row, knobs: dict, loops: bool, limit: int) -> None:
    """``planned`` for one row under one setting, the setting's knobs in the environment."""
    fwd, bwd, cell_constants = CELLS[row.cell]
    dtype = ROW_DTYPES[row.dtype]
    plan = launch.plan(common.GATES[row.cell], row.hidden, row.batch, dtype, torch.device("cuda"))
    shared = {**cell_constants, **plan.meta}  # the plan's FUSED over the default one
    shared.update(SYNC=plan.sync, HAS_LENGTHS=False, REVERSE=False)
    name = ",".join(f"{k}={v}" for k, v in knobs.items()) or "default"
    path = "on chip" if plan.meta["ON_CHIP"] else "resident" if plan.meta["RESIDENT"] else "streamed"
    tiles = "x".join(str(plan.meta[k]) for k in ("BLOCK_B", "BLOCK_N", "BLOCK_K"))
    path += ", tagged exchange" if plan.tagged else ""
    print(f"# {row.cell},{row.batch},{row.steps},{row.input_size},{row.hidden},{row.dtype} {name}: "
          f"{path}, grid {plan.grid}, tiles {tiles}, {plan.meta.get('num_warps')} warps")  # fmt: skip
    # as launch.run starts them: with tagged words, no barrier
    shared.update(dict(TAGGED=True, SYNC=False) if plan.tagged else UNTAGGED)
    for kind, (fn, variant) in kernel_variants(fwd, bwd, shared, row.dtype, False).items():
        result = compile_variant(fn, row.dtype, variant, True, loops)
        result += over_the_card(result, limit, fallback=plan.fallback is not None)
        print(f"  {kind:4s} {result}", flush=True)


@contextlib.contextmanager
def _h100_sms():
    saved = launch.num_sms
    launch.num_sms = lambda device: 132
    try:
        yield
    finally:
        launch.num_sms = saved


def over_the_card(result: str, limit: int, fallback: bool) -> str:
    """'' where the variant's shared memory fits a program of the target, else what the launcher does when
    the card refuses it (kernels/launch.py: Plan.fallback; every path but 16-row streamed tiles has one)."""
    found = re.search(r"SMEM:(\d+)", result)
    if not found or int(found.group(1)) <= limit:
        return ""
    return f"  OVER {limit}: " + ("falls back" if fallback else "no fallback")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aligned", action="store_true", help="B, H and pointers divisible by 16")
    parser.add_argument("--no-prefetch", action="store_true", help="as RNNLAB_PREFETCH=0 runs them")
    parser.add_argument("--loops", action="store_true", help="also the instruction mix of the time loop")
    parser.add_argument("--tile-widths", action="store_true", help="only the 16-row split tiles' widths")
    parser.add_argument(
        "--both-directions", action="store_true", help="REVERSE=2: a bidirectional layer's two in one launch"
    )
    parser.add_argument(
        "--plain", action="store_true", help="no lengths, inference forward, no GRU biases, RNN relu, fp16"
    )
    parser.add_argument("--rows", nargs="+", default=[], metavar="cell,B,T,I,H,dtype", help="planned rows")
    parser.add_argument("--settings", nargs="+", default=["default"], metavar="RNNLAB_X=V[,...]")
    parser.add_argument(
        "--arch", choices=list(SHARED_LIMIT), default="90", help="compute capability (or AMD gfx) to target"
    )
    args = parser.parse_args(argv)
    global TARGET
    hip = args.arch.startswith("gfx")
    TARGET = GPUTarget("hip", args.arch, 64) if hip else GPUTarget("cuda", int(args.arch), 32)
    if hip and args.loops:
        parser.error("--loops reads NVIDIA SASS: not with an AMD --arch")
    arch = args.arch if hip else f"sm_{args.arch}"
    aligned, prefetch, loops = args.aligned, not args.no_prefetch, args.loops
    if args.rows:
        target = f"target {arch}, aligned"
        print(f"# triton {triton.__version__}, {target}, as kernels/launch.py plans on 132 SMs")
        rows, settings = [parse_row(r) for r in args.rows], [parse_setting(s) for s in args.settings]
        planned(rows, settings, loops, SHARED_LIMIT[args.arch])
        return 0
    if args.tile_widths:
        print(f"# triton {triton.__version__}, target {arch}, aligned, 16-row split tiles by width")
        tile_widths(loops)
        return 0
    notes = (", aligned" if aligned else "") + ("" if prefetch else ", no prefetch")
    notes += ", both directions in one launch" if args.both_directions else ""
    notes += ", plain (no lengths, inference forward, no GRU biases, RNN relu, fp16)" if args.plain else ""
    limit = SHARED_LIMIT[args.arch]
    print(f"# triton {triton.__version__}, target {arch}{notes}")
    for cell, (fwd, bwd, cell_constants) in CELLS.items():
        for dname, (dtype, precision) in (PLAIN_DTYPES if args.plain else DTYPES).items():
            for path, meta in paths(cell, dname).items():
                shared = dict(
                    meta,
                    SYNC=True,
                    HAS_LENGTHS=True,
                    REVERSE=2 if args.both_directions else False,
                    PREFETCH=prefetch,
                    PRECISION=precision,
                    UPCAST=False,
                    **UNTAGGED,
                )
                shared.update(cell_constants)
                if args.plain:
                    shared.update(PLAIN, **PLAIN_CELLS[cell])
                forward = PLAIN_FORWARD[cell] if args.plain else None
                for kind, (fn, settings) in kernel_variants(fwd, bwd, shared, dname, forward=forward).items():
                    label = f"{cell} {kind} {dname} {path}"
                    try:
                        result = compile_variant(fn, dtype, settings, aligned, loops)
                    except Exception as err:  # noqa: BLE001 - a variant this code cannot build is reported
                        result = f"does not compile: {type(err).__name__}"
                    result += over_the_card(result, limit, fallback=path != "streamed16")
                    print(f"{label:32s} {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
