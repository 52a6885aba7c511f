"""Compile every fused-kernel variant for an H100 (sm_90) without a GPU, and print per variant a hash of its
machine code (SASS, from the cubin, addresses and encodings stripped) and its register / stack use.

    python experiments/kernels/compile_sm90.py > before.txt     # then change the kernels, run again, diff

Identical hashes before and after a change mean the GPU runs the very same instructions (a refactor cannot
have changed speed); the STACK column counts bytes spilled to local memory. (Triton emits line info, so a
change that only adds an inlined helper can still move ptxas's register allocation: compare the SASS, not
the PTX.) Variants: LSTM, GRU, RNN (tanh) x
forward/backward (and backward without a sequence gradient, d_out=None) x the four paths of
kernels/launch.py (on chip; split resident; split streamed with 16- and 64-row tiles) x fp32 (TF32) and
bf16, with lengths and a grid barrier. Uses the installed Triton (its bundled ptxas and cuobjdump); run it
with another Triton first on PYTHONPATH to check that version.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile

os.environ.pop("TRITON_INTERPRET", None)  # compile for the GPU, not the interpreter
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9 warns when unset; 1 is its default

import triton  # noqa: E402
from rnnlab.kernels import gru, lstm, rnn  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
FP32_BUFFERS = {"h_buf", "c_buf", "dh_buf", "dc_buf"}  # the fp32 state scratch
INT32_POINTERS = {"lengths", "counter"}
SCALARS = {"T", "B", "H", "S0", "STEPS"}
CELLS = {
    "lstm": (lstm._lstm_fwd_kernel, lstm._lstm_bwd_kernel, {}),
    "gru": (gru._gru_fwd_kernel, gru._gru_bwd_kernel, {"HAS_BIAS": True}),
    "rnn": (rnn._rnn_fwd_kernel, rnn._rnn_bwd_kernel, {"ACT": 0}),
}
DTYPES = {"fp32": ("fp32", "tf32"), "bf16": ("bf16", "ieee")}


def paths(dtype: str) -> dict[str, dict]:
    """The launch plans' shapes (kernels/launch.py) for each path, with the streamed tiles of that dtype."""
    block_k, stages = (32, 3) if dtype == "fp32" else (64, 4)
    return {
        "onchip": dict(ON_CHIP=True, RESIDENT=False, BLOCK_B=16, BLOCK_N=64, BLOCK_K=64, num_warps=8),
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
        else:
            sig[name] = "*fp32" if name in FP32_BUFFERS else "*" + dtype
    return sig


def compile_variant(fn, dtype: str, settings: dict) -> str:
    """'<SASS hash> <cuobjdump resource line>' of one variant: the machine code the GPU would run."""
    settings = dict(settings)
    options = {"num_warps": settings.pop("num_warps"), "num_stages": settings.pop("num_stages", 3)}
    constants = {k: v for k, v in settings.items() if k in fn.arg_names}
    kernel = triton.compile(
        ASTSource(fn, signature(fn, dtype, constants), constants), target=TARGET, options=options
    )
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
    return f"{digest}  {' '.join(resources.split()[:3])}"


def main() -> int:
    print(f"# triton {triton.__version__}, target sm_90")
    for cell, (fwd, bwd, cell_constants) in CELLS.items():
        for dname, (dtype, precision) in DTYPES.items():
            for path, meta in paths(dname).items():
                shared = dict(
                    meta, SYNC=True, HAS_LENGTHS=True, REVERSE=False, PRECISION=precision, UPCAST=False
                )
                shared.update(cell_constants)
                variants = {
                    "fwd": (fwd, dict(shared, SAVE=True)),
                    "bwd": (bwd, dict(shared, PHASE1=True, PHASE2=True)),
                    "bwd no-d_out": (bwd, dict(shared, PHASE1=True, PHASE2=True, d_out=None)),
                }
                for kind, (fn, settings) in variants.items():
                    label = f"{cell} {kind} {dname} {path}"
                    try:
                        result = compile_variant(fn, dtype, settings)
                    except Exception as err:  # noqa: BLE001 - a variant this code cannot build is reported
                        result = f"does not compile: {type(err).__name__}"
                    print(f"{label:32s} {result}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
