#!/usr/bin/env bash
# The one prepared run for the GPU machine (see ../shared/device/README.md): set-up, the GPU tests, then the
# benchmark of triton against cuDNN and the reference path, everything logged under $OUT.
#
#   cp -r ../shared/device .device            # once, on the CPU machine (git-ignored)
#   run(command="bash scripts/gpu_check.sh", carry=[".device"], timeout_s=540)
#
# GPU_CHECK_QUICK=1 runs the quick benchmark grid (fp32 and bf16, two rows per cell) instead of the full one.
set -uo pipefail
out=${OUT:-/tmp/rnnlab-gpu}
mkdir -p "$out"
# shellcheck disable=SC1091
source .device/setup.sh > "$out/setup.log" 2>&1 || { cat "$out/setup.log"; exit 1; }  # not in a pipe: a
cat "$out/setup.log"                                   # piped `source` would run in a subshell and lose its exports
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
# Every kernel test compiled on CUDA (the gpu-marked large-H ones, and the interpreter's odd shapes), and the
# layers on backend="triton", torch.compile included.
timeout 300 python -m pytest tests/kernels tests/layers/test_triton_backend.py tests/layers/test_layer_compile.py \
    -q -p no:cacheprovider 2>&1 | tail -40 | tee "$out/gpu-tests.log"
quick=()
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && quick=(--quick)
timeout 300 rnnlab-bench --device cuda "${quick[@]}" --markdown --csv "$out/bench-cuda.csv" \
    --plot "$out/bench-cuda.png" 2>&1 | tee "$out/bench-cuda.log"
