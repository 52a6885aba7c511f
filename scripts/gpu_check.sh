#!/usr/bin/env bash
# The one prepared run for the GPU machine (see ../shared/device/README.md): set-up, a smoke test of the
# grid barrier, the benchmark of triton against cuDNN and the reference path, then all the GPU tests,
# everything logged under $OUT.
#
#   cp -r ../shared/device .device            # once, on the CPU machine (git-ignored)
#   run(command="bash scripts/gpu_check.sh", carry=[".device"], timeout_s=540)
#
# GPU_CHECK_QUICK=1 runs the quick benchmark grid (fp32 and bf16, two rows per cell) instead of the full one;
# BACKENDS (default "cudnn triton reference") picks the benchmark's backends; TESTS=0 / TUNE=0 skip phase 3
# / phases 4 and 5; BENCH_S / TESTS_S / TUNE_S / HOST_S bound the phases (seconds). If the grid-barrier
# smoke test fails or hangs, the rest runs with RNNLAB_GRID_SYNC=0 (the split path launched step by step),
# and the log says so.
set -uo pipefail
out=${OUT:-/tmp/rnnlab-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# shellcheck disable=SC1091
source .device/setup.sh > "$out/setup.log" 2>&1 || { cat "$out/setup.log"; exit 1; }  # not in a pipe: a
tail -3 "$out/setup.log"                               # piped `source` would run in a subshell and lose its exports
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
workers=()
python -c "import xdist" 2>/dev/null && workers=(-n 12)

# 1. The grid barrier: one launch with a barrier per step against step-by-step launches, every cell.
timeout "${SMOKE_S:-90}" python -m pytest tests/kernels/test_gpu.py -k grid_barrier "${workers[@]}" -q -p no:cacheprovider \
    > "$out/smoke.log" 2>&1
smoke=$?
tail -5 "$out/smoke.log"
if [ "$smoke" != 0 ]; then
    echo "grid-barrier smoke test failed (exit $smoke): the rest runs with RNNLAB_GRID_SYNC=0" | tee -a "$out/gpu.txt"
    export RNNLAB_GRID_SYNC=0
fi

# 2. The benchmark, on a quiet GPU.
quick=()
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && quick=(--quick)
read -r -a backends <<< "${BACKENDS:-cudnn triton reference}"
timeout "${BENCH_S:-230}" rnnlab-bench --device cuda "${quick[@]}" --backends "${backends[@]}" --markdown \
    --csv "$out/bench-cuda.csv" --plot "$out/bench-cuda.png" > "$out/bench-cuda.log" 2>&1
echo "bench exit $?"
grep -A200 "^| cell" "$out/bench-cuda.log" | grep -v reference

# 3. Every kernel test compiled on CUDA, and the layers on backend="triton", torch.compile included.
if [ "${TESTS:-1}" = 1 ]; then
    timeout "${TESTS_S:-90}" python -m pytest tests/kernels tests/layers/test_triton_backend.py \
        tests/layers/test_layer_compile.py "${workers[@]}" -q -rfE -p no:cacheprovider > "$out/gpu-tests.log" 2>&1
    echo "pytest exit $?"
    tail -15 "$out/gpu-tests.log"
fi

# 4. Knob settings side by side (experiments/kernels/knob_ab.py): one process, the settings interleaved round
# by round with cuDNN, and the device time of each kernel of one forward+backward (--profile). TUNE_ENVS:
# settings besides the default (kernels/launch.py: RNNLAB_ON_CHIP_BYTES, RNNLAB_PREFETCH, RNNLAB_RESIDENT,
# RNNLAB_MAX_BLOCK_B, RNNLAB_TILE=BLOCK_N,BLOCK_K,warps,stages; several knobs in one setting joined by
# commas). The default rows: GRU H=128 fp16 (prefetch made its saving forward's kernel 5% slower in run 4)
# and LSTM B=64 and B=256 (LSTM uses 64-row batch tiles there; GRU's 16-row tiles beat cuDNN by more at
# B=64 in run 4).
[ "${TUNE:-1}" = 1 ] || exit 0
read -r -a settings <<< "${TUNE_ENVS:-RNNLAB_PREFETCH=0 RNNLAB_MAX_BLOCK_B=16}"
read -r -a rows <<< "${TUNE_ROWS:-gru,16,1024,128,128,fp16 lstm,64,256,512,512,fp16 lstm,256,128,1024,1024,fp32}"
timeout "${TUNE_S:-120}" python experiments/kernels/knob_ab.py --rows "${rows[@]}" --settings default \
    "${settings[@]}" --rounds 3 --profile --csv "$out/tune.csv" > "$out/tune.log" 2>&1
echo "knob_ab exit $?"
grep -v -e "^  profile" -e Warning -e "^  " "$out/tune.log"

# 5. Where the host time of a short call goes (experiments/kernels/host_profile.py): back-to-back and waited
# wall time per call, and a cProfile, triton beside cudnn.
timeout "${HOST_S:-45}" python experiments/kernels/host_profile.py --row "${HOST_ROW:-lstm,32,100,64,128,fp16}" \
    > "$out/host-profile.log" 2>&1
echo "host_profile exit $?"
grep "a call" "$out/host-profile.log"
