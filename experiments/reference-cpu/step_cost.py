"""Why the reference LSTM cannot reach torch.nn's CPU LSTM: one step's recurrent product alone against
torch.nn's whole step.

    python experiments/reference-cpu/step_cost.py            # ~20 s on 2 cores

Times, at (B, T, I, H) = (32, 100, 64, 128) (the first CPU target row), the (B, H) @ (H, 4H) product every
step of the reference loop must make (oneDNN-packed, as the reference path does, and torch.addmm), and
torch.nn.LSTM's whole forward divided by T (oneDNN's fused LSTM primitive, gate math included).
"""

import time

import torch

from rnnlab.reference.matmul import StepMatmul


def per_call_us(fn, calls: int, warmup: int = 100) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    torch.manual_seed(0)
    batch, steps, inputs, hidden = 32, 100, 64, 128
    w_hh = torch.randn(4 * hidden, hidden) * hidden**-0.5
    h, gx_t = torch.randn(batch, hidden), torch.randn(batch, 4 * hidden)
    step = StepMatmul(w_hh, batch)
    lstm = torch.nn.LSTM(inputs, hidden)
    x = torch.randn(steps, batch, inputs)
    with torch.no_grad():
        nn_step = per_call_us(lambda: lstm(x), calls=50, warmup=5) / steps
    packed = per_call_us(lambda: step(h, gx_t), 3000)
    addmm = per_call_us(lambda: torch.addmm(gx_t, h, w_hh.t()), 3000)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={batch} H={hidden} T={steps}")
    print(f"recurrent product, oneDNN-packed (reference path): {packed:6.1f} us")
    print(f"recurrent product, torch.addmm:                    {addmm:6.1f} us")
    print(f"torch.nn.LSTM forward, per step (whole step):      {nn_step:6.1f} us")


if __name__ == "__main__":
    main()
