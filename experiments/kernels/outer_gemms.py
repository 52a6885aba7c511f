"""The fp32 GEMMs outside the fused kernels, per benchmark row: their FLOPs and what they cost an H100 in
full fp32 and in TF32, beside run 4's measured times (h100-run4/bench-cuda.csv, where they ran in full fp32).

    python experiments/kernels/outer_gemms.py            # a second; no GPU needed

A layer's forward makes one GEMM outside the recurrence, the input projection gx = x @ W_ih.T (2·T·B·I·G·H
FLOPs); its backward makes three: dx = dG @ W_ih and dW_ih = dG.T @ x (the same count each) and
dW_hh = sum_t dG_t.T h_{t-1} (2·T·B·H·G·H). Before kernels/projection.py they ran on torch's matmul setting
(full fp32 by default: no tensor cores), while cuDNN runs every product of an fp32 RNN in TF32 under
torch.backends.cudnn.allow_tf32 (on by default). The times are estimates at the H100 SXM's dense peak rates
(67 TFLOP/s fp32, 495 TFLOP/s TF32): a floor for each, not a measurement. What the change saves is for the
next GPU run to measure (scripts/gpu_check.sh: the table, and RNNLAB_PROJECTION_TF32=0 side by side).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.kernels.common import GATES

from rnnlab.bench.grid import grid
from rnnlab.bench.report import read_column

FP32, TF32 = 67e12, 495e12  # FLOP/s, H100 SXM, dense
RUN4 = Path(__file__).resolve().parent / "h100-run4" / "bench-cuda.csv"


def outer_flops(cell: str, batch: int, steps: int, inputs: int, hidden: int) -> tuple[float, float]:
    """FLOPs of the GEMMs outside the kernels: (forward, backward)."""
    gates = GATES[cell] * hidden
    projection = 2.0 * steps * batch * inputs * gates
    return projection, 2 * projection + 2.0 * steps * batch * hidden * gates


def main() -> None:
    run4 = read_column(RUN4, "fwd_bwd_ms")  # fp32 rows looked up below
    print(
        "| cell | B | T | I | H | outer GEMMs fwd / bwd GFLOP | fp32 at peak fwd+bwd ms"
        " | TF32 at peak fwd+bwd ms | run 4 triton / cuDNN fwd+bwd ms | run 4 ratio"
        " | ratio less the difference |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in grid("cuda", quick=False, cells=["lstm", "gru", "rnn"], dtypes=["fp32"]):
        fwd, bwd = outer_flops(row.cell, row.batch, row.steps, row.input_size, row.hidden)
        full, tf32 = (fwd + bwd) / FP32 * 1e3, (fwd + bwd) / TF32 * 1e3
        ms = run4.get((row.cell, row.batch, row.steps, row.input_size, row.hidden, row.dtype), {})
        triton, cudnn = ms.get("triton"), ms.get("cudnn")
        shown = "n/a | n/a | n/a"
        if triton and cudnn:
            less = (triton - full + tf32) / cudnn  # run 4's time with the GEMMs at TF32's peak instead
            shown = f"{triton:.2f} / {cudnn:.2f} | {triton / cudnn:.2f} | {less:.2f}"
        print(
            f"| {row.cell.upper()} | {row.batch} | {row.steps} | {row.input_size}"
            f" | {row.hidden} | {fwd / 1e9:.1f} / {bwd / 1e9:.1f} | {full:.2f} | {tf32:.2f} | {shown} |"
        )


if __name__ == "__main__":
    main()
