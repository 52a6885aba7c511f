#!/usr/bin/env bash
# The one prepared run for the GPU machine (see ../shared/device/README.md): set-up, the benchmark of triton
# against cuDNN and the reference path, then the GPU tests, everything logged under $OUT.
#
#   cp -r ../shared/device .device            # once, on the CPU machine (git-ignored)
#   run(command="bash scripts/gpu_check.sh", carry=[".device"], timeout_s=540)
#
# GPU_CHECK_QUICK=1 runs the quick benchmark grid (fp32 and bf16, two rows per cell) instead of the full one;
# BENCH_S / TESTS_S bound the two phases (seconds). The benchmark runs first, on a quiet GPU; the tests then
# run in parallel (pytest-xdist) and whatever they reach within TESTS_S is logged.
set -uo pipefail
out=${OUT:-/tmp/rnnlab-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# shellcheck disable=SC1091
source .device/setup.sh > "$out/setup.log" 2>&1 || { cat "$out/setup.log"; exit 1; }  # not in a pipe: a
tail -3 "$out/setup.log"                               # piped `source` would run in a subshell and lose its exports
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
quick=()
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && quick=(--quick)
timeout "${BENCH_S:-300}" rnnlab-bench --device cuda "${quick[@]}" --markdown --csv "$out/bench-cuda.csv" \
    --plot "$out/bench-cuda.png" 2>&1 | tee "$out/bench-cuda.log"
# Every kernel test compiled on CUDA (the gpu-marked large-H ones, and the interpreter's odd shapes), and the
# layers on backend="triton", torch.compile included.
workers=()
python -c "import xdist" 2>/dev/null && workers=(-n 12)
timeout "${TESTS_S:-150}" python -m pytest tests/kernels tests/layers/test_triton_backend.py \
    tests/layers/test_layer_compile.py "${workers[@]}" -q -rfE -p no:cacheprovider > "$out/gpu-tests.log" 2>&1
echo "pytest exit $?"
tail -40 "$out/gpu-tests.log"
