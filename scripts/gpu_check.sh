#!/usr/bin/env bash
# The one prepared run for the GPU machine (see ../shared/device/README.md): set-up, a smoke test of the
# grid barrier, the benchmark of triton against cuDNN and the reference path, then all the GPU tests,
# everything logged under $OUT.
#
#   cp -r ../shared/device .device            # once, on the CPU machine (git-ignored)
#   run(command="bash scripts/gpu_check.sh", carry=[".device"], timeout_s=590)
#
# GPU_CHECK_QUICK=1 runs the quick benchmark grid (fp32 and bf16, two rows per cell) instead of the full one;
# BACKENDS (default "cudnn triton": run 4's table has the reference path's times) picks the benchmark's
# backends; TESTS=0 / TUNE=0 skip phase 3 / phases 5 and 6. SMOKE_S / SMOKE_TAGGED_S / BENCH_S / TESTS_S /
# MEMORY_S / TUNE_S (each group) / HOST_S / HOST_COMPILED_S bound the phases (seconds), and BUDGET_S
# (default 570, for a 590-second call) bounds them all: a phase gets at most what is left, and one with
# under 15 s left is skipped (the log says so). If the grid-barrier smoke test fails or hangs, the rest runs with
# RNNLAB_GRID_SYNC=0 (the split path launched step by step), and the log says so.
set -uo pipefail
out=${OUT:-/tmp/rnnlab-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# shellcheck disable=SC1091
source .device/setup.sh > "$out/setup.log" 2>&1 || { cat "$out/setup.log"; exit 1; }  # not in a pipe: a
tail -3 "$out/setup.log"                               # piped `source` would run in a subshell and lose its exports
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$out/gpu.txt"
budget=${BUDGET_S:-570}
# bounded SECONDS COMMAND...: run it for at most its own bound or what is left of the budget, whichever is
# less; with under 15 s left, skip it (exit 124, as timeout's).
bounded() {
    local want=$1 left=$((budget - SECONDS))
    shift
    if ((left < 15)); then
        echo "out of time, skipped: $* ($left s left of $budget)" | tee -a "$out/gpu.txt"
        return 124
    fi
    timeout $((want < left ? want : left)) "$@"
}
workers=()
python -c "import xdist" 2>/dev/null && workers=(-n 12)

# 1. The grid barrier: one launch with a barrier per step against step-by-step launches, every cell.
bounded "${SMOKE_S:-60}" python -m pytest tests/kernels/test_gpu.py -k "grid_barrier and not tagged" "${workers[@]}" \
    -q -p no:cacheprovider > "$out/smoke.log" 2>&1
smoke=$?
tail -5 "$out/smoke.log"
if [ "$smoke" != 0 ]; then
    echo "grid-barrier smoke test failed (exit $smoke): the rest runs with RNNLAB_GRID_SYNC=0" | tee -a "$out/gpu.txt"
    export RNNLAB_GRID_SYNC=0
fi

# 2. The benchmark, on a quiet GPU.
quick=()
[ "${GPU_CHECK_QUICK:-0}" = 1 ] && quick=(--quick)
read -r -a backends <<< "${BACKENDS:-cudnn triton}"
bounded "${BENCH_S:-230}" rnnlab-bench --device cuda "${quick[@]}" --backends "${backends[@]}" --markdown \
    --csv "$out/bench-cuda.csv" --plot "$out/bench-cuda.png" > "$out/bench-cuda.log" 2>&1
echo "bench exit $?"
grep -A200 "^| cell" "$out/bench-cuda.log" | grep -v reference

# 2b. The tagged exchange (RNNLAB_EXCHANGE=tagged, off by default, never run on a GPU before): phase 1's test
# with it, on its own and after the benchmark, so that a hang there costs only this phase (its bound also
# covers compiling the tagged kernels on a cold cache). If it fails, or phase 1 failed (its test needs the
# one-launch path), phase 3 leaves out every test named "tagged" and phase 5 its group.
if [ "$smoke" = 0 ]; then
    bounded "${SMOKE_TAGGED_S:-60}" python -m pytest tests/kernels/test_gpu.py -k "grid_barrier and tagged" \
        "${workers[@]}" -q -p no:cacheprovider > "$out/smoke-tagged.log" 2>&1
    tagged=$?
    tail -3 "$out/smoke-tagged.log"
else
    tagged=skipped
fi
untagged=()
if [ "$tagged" != 0 ]; then
    case $tagged in
        skipped) why="skipped: the grid barrier failed in phase 1" ;;
        124) why="timed out (a hang, or compiling took longer than its bound)" ;;
        *) why="failed (exit $tagged)" ;;
    esac
    echo "tagged-exchange smoke test $why: its tests and tuning group are left out" | tee -a "$out/gpu.txt"
    untagged=(-k "not tagged")
fi

# 3. Every kernel test compiled on CUDA, and the layers on backend="triton", torch.compile included.
# 749 tests on 2026-11-27 (run 4: 563 in 72 s, 12 of them compile tests failing fast; passing, those 29 took
# 27 s alone; since then about 30 fused-gates tests, each compiling its own kernels, and 52 of both
# directions in one launch, with kernels of their own, REVERSE=2): 170 s, so that a slow run still reaches
# pytest's summary.
if [ "${TESTS:-1}" = 1 ]; then
    bounded "${TESTS_S:-170}" python -m pytest tests/kernels tests/layers/test_triton_backend.py \
        tests/layers/test_layer_compile.py tests/layers/test_bidirectional_streams.py "${workers[@]}" \
        "${untagged[@]}" -q -rfE \
        -p no:cacheprovider > "$out/gpu-tests.log" 2>&1
    echo "pytest exit $?"
    tail -15 "$out/gpu-tests.log"
fi

# 4. What is alive at the peak of one forward+backward (experiments/kernels/memory_peak.py), from the
# caching allocator's history, triton beside cuDNN: the four bf16 rows run 4 measured above cuDNN's peak,
# and rows where the CPU model (memory_model.py) counts less than the GPU uses (RNN fp32: 24 vs 40 MB).
bounded "${MEMORY_S:-45}" python experiments/kernels/memory_peak.py --backends triton cudnn --rows \
    lstm,16,1024,128,128,bf16 gru,16,1024,128,128,bf16 lstm,16,512,768,768,bf16 lstm,64,256,512,512,bf16 \
    rnn,16,1024,128,128,fp32 > "$out/memory-peak.log" 2>&1
echo "memory_peak exit $?"
grep -e "peak" "$out/memory-peak.log"

# 5. Knob settings side by side (experiments/kernels/knob_ab.py): one process per group, the settings
# interleaved round by round with cuDNN, and the device time of each kernel of one forward+backward
# (--profile). A group is "rows|settings" (space-separated each); TUNE_GROUPS (groups separated by ";")
# replaces the default groups. Knobs (kernels/launch.py): RNNLAB_ON_CHIP_BYTES, RNNLAB_ON_CHIP_STAGES,
# RNNLAB_PREFETCH, RNNLAB_RESIDENT, RNNLAB_RESIDENT_ELEMENTS, RNNLAB_RESIDENT_STATE, RNNLAB_MAX_BLOCK_B,
# RNNLAB_EXCHANGE, RNNLAB_FUSED_GATES, RNNLAB_BIDIR_LAUNCH, RNNLAB_BIDIR_STREAMS,
# RNNLAB_TILE=BLOCK_N,BLOCK_K,warps,stages, kernels/projection.py's
# RNNLAB_PROJECTION_TF32 and kernels/common.py's RNNLAB_BACKWARD_WT and RNNLAB_FAST_MATH; several knobs in one setting joined by commas;
# a row cell,B,T,I,H,dtype[,bi]. The default groups, most wanted first (a group cut short by the limit
# loses only itself, a setting that fails its first call only itself; every setting was compiled for sm_90 first: experiments/kernels/
# sm90-triton3.6-next-run.txt has its registers, spills and shared memory, sm90-triton3.6-tagged.txt the
# tagged exchange's, sm90-triton3.6-gru-on-chip-stages.txt GRU's on chip):
# - the forward's activations with Triton's own lowering (RNNLAB_FAST_MATH=0), against the default since
#   run 4, ex2/rcp as one PTX instruction each (common.fast_math: compiled for sm_90 the forward steps issue
#   21 to 33% fewer instructions, experiments/kernels/sm90-triton3.6-fast-math.txt): H=128 rows, on chip
#   and split, and one wide row;
# - the fp32 backward reading W_hh as stored (RNNLAB_BACKWARD_WT=0), against the default since run 4, its
#   transpose (common.backward_weight: ldmatrix instead of one scalar shared-memory load per element;
#   compiled for sm_90, LSTM H=128's resident backward issues 892 instructions a step instead of 1055,
#   experiments/kernels/sm90-triton3.6-backward-wt.txt): the latency rows and the largest W_hh;
# - the gates' products fused (RNNLAB_FUSED_GATES=1: one product for all of a step's gates, so Triton deals
#   its columns across the warps; at 16 columns each per-gate product is issued whole by every
#   warp): fp32 H=128 LSTM/GRU (resident: forward and backward fused), then in a group of its own the
#   streamed rows with 16-row tiles (forward fused) and LSTM H=768 fp16 with W_hh resident, whose
#   forward stops spilling when fused (experiments/kernels/sm90-triton3.6-fused-gates.txt);
# - fp32 H=128 LSTM/GRU with the tagged exchange (RNNLAB_EXCHANGE=tagged: the resident programs wait on
#   tagged words of h, and backward of the gate gradients, instead of the grid barrier), with 16- and with
#   64-column slices (left out when phase 2b's smoke test did not pass);
# - fp32 LSTM B=256 H=1024 and B=8 H=2048 with the GEMMs outside the kernels in full fp32
#   (RNNLAB_PROJECTION_TF32=0, as before kernels/projection.py: since then they follow cuDNN's TF32 switch,
#   as cuDNN's own do; no kernel to compile, so this group is quick), and then in a group of its own (new
#   kernels to compile) with 64-deep K tiles, 8 warps, 2 stages (4 stages would need 384 KB of shared
#   memory at B=256), and with 64-column tiles, 16 warps, 2 stages: half the programs per batch tile, so
#   each step's state (forward) and gate gradients (backward) are read from L2 half as often (at B=256,
#   per step, 192 MB of W_hh slices and dG rows read in the backward with 32-column tiles, 128 MB with 64);
#   compiled for sm_90, 126 / 128 registers and 0 / 40 bytes of stack, where 8 warps spill 88 / 56;
# - fp32 H=128 LSTM/GRU (resident, 16-column slices) with 32- and 64-column slices: compiled for sm_90,
#   a 16-row by 16-column tile repeats each MMA in all 4 warps, a 32-column tile splits them 4 ways; and
#   GRU's forward on chip (RNNLAB_ON_CHIP_BYTES=196608: 200 KB of shared memory; its backward needs 336 KB,
#   is refused at launch and falls back to the split path, as kernels/launch.py's run() provides), and
#   both directions on chip (with RNNLAB_ON_CHIP_STAGES=1 the backward needs 224 KB: it fits);
# - LSTM B=16 H=768 fp16/bf16 (streamed, 16-column tiles) with W_hh resident (16 x 1024 x 4 slices: 192 KB
#   of shared memory, and the forward spills) or with 32-column streamed tiles;
# - bidirectional layers: by default both directions in one launch where the plan is on chip (the two H=128
#   rows) and one launch per direction on the split path (H=768); against a launch per direction always
#   (RNNLAB_BIDIR_LAUNCH=separate, as before), one launch always (RNNLAB_BIDIR_LAUNCH=one: on the split
#   path each direction then gets half the SMs), and the reverse direction on a second CUDA stream
#   (RNNLAB_BIDIR_STREAMS=1);
# - GRU H=128 fp16 without prefetch (its saving forward's kernel was 5% faster so), LSTM B=64 with
#   16-row batch tiles (GRU's 16-row tiles beat cuDNN by more there).
[ "${TUNE:-1}" = 1 ] || exit 0
default_groups="lstm,16,1024,128,128,fp32 rnn,16,1024,128,128,fp32 lstm,16,1024,128,128,fp16 \
gru,16,1024,128,128,fp16 lstm,16,512,768,768,fp16|RNNLAB_FAST_MATH=0;\
lstm,16,1024,128,128,fp32 gru,16,1024,128,128,fp32 rnn,16,1024,128,128,fp32 \
lstm,8,256,2048,2048,fp32|RNNLAB_BACKWARD_WT=0;\
lstm,16,1024,128,128,fp32 gru,16,1024,128,128,fp32|RNNLAB_FUSED_GATES=1 RNNLAB_FUSED_GATES=1,RNNLAB_TILE=32,32,4,3;\
lstm,8,256,2048,2048,fp32 gru,64,256,512,512,fp32 lstm,16,512,768,768,fp16|RNNLAB_FUSED_GATES=1 \
RNNLAB_FUSED_GATES=1,RNNLAB_RESIDENT_ELEMENTS=65536,RNNLAB_RESIDENT_STATE=16384;\
lstm,16,1024,128,128,fp32 gru,16,1024,128,128,fp32|RNNLAB_EXCHANGE=tagged \
RNNLAB_EXCHANGE=tagged,RNNLAB_TILE=64,32,4,3,RNNLAB_RESIDENT_ELEMENTS=32768;\
lstm,256,128,1024,1024,fp32 lstm,8,256,2048,2048,fp32|RNNLAB_PROJECTION_TF32=0;\
lstm,256,128,1024,1024,fp32 lstm,8,256,2048,2048,fp32|RNNLAB_TILE=0,64,8,2 RNNLAB_TILE=64,32,16,2;\
lstm,16,1024,128,128,fp32 gru,16,1024,128,128,fp32|RNNLAB_TILE=32,32,4,3 \
RNNLAB_TILE=64,32,4,3,RNNLAB_RESIDENT_ELEMENTS=32768 RNNLAB_ON_CHIP_BYTES=196608 \
RNNLAB_ON_CHIP_BYTES=196608,RNNLAB_ON_CHIP_STAGES=1;\
lstm,16,512,768,768,fp16 lstm,16,512,768,768,bf16|RNNLAB_RESIDENT_ELEMENTS=65536,RNNLAB_RESIDENT_STATE=16384 \
RNNLAB_TILE=32,64,4,4;\
lstm,16,1024,128,128,bf16,bi gru,32,100,64,128,fp16,bi lstm,16,512,768,768,bf16,bi|RNNLAB_BIDIR_LAUNCH=separate \
RNNLAB_BIDIR_LAUNCH=one RNNLAB_BIDIR_STREAMS=1;\
gru,16,1024,128,128,fp16 lstm,64,256,512,512,fp16|RNNLAB_PREFETCH=0 RNNLAB_MAX_BLOCK_B=16"
IFS=";" read -r -a groups <<< "${TUNE_GROUPS:-$default_groups}"
: > "$out/tune.log"
for index in "${!groups[@]}"; do
    if [ "$tagged" != 0 ] && [[ ${groups[$index]} == *RNNLAB_EXCHANGE=tagged* ]]; then
        echo "knob_ab group $index left out: the tagged exchange's smoke test did not pass"
        continue
    fi
    read -r -a rows <<< "${groups[$index]%%|*}"
    read -r -a settings <<< "${groups[$index]#*|}"
    bounded "${TUNE_S:-55}" python experiments/kernels/knob_ab.py --rows "${rows[@]}" --settings default \
        "${settings[@]}" --rounds 3 --profile --csv "$out/tune-$index.csv" >> "$out/tune.log" 2>&1
    echo "knob_ab group $index exit $?"
done
grep -v -e "^  " -e Warning "$out/tune.log"

# 6. Where the host time of a short call goes (experiments/kernels/host_profile.py): back-to-back and waited
# wall time per call and a cProfile, triton beside cudnn; then the same through torch.compile with
# mode="reduce-overhead" (CUDA graphs: the remedy to try where the host is the bottleneck).
row=${HOST_ROW:-lstm,32,100,64,128,fp16}
bounded "${HOST_S:-30}" python experiments/kernels/host_profile.py --row "$row" > "$out/host-profile.log" 2>&1
echo "host_profile exit $?"
bounded "${HOST_COMPILED_S:-60}" python experiments/kernels/host_profile.py --row "$row" --top 10 \
    --compile reduce-overhead > "$out/host-profile-compiled.log" 2>&1
echo "host_profile --compile exit $?"
grep -h "a call" "$out/host-profile.log" "$out/host-profile-compiled.log"
