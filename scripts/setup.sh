#!/usr/bin/env bash
# Set up rnnlab in ./.venv, idempotently: sourced by scripts/run.sh and scripts/test.sh.
#
# PyTorch: on a machine with an NVIDIA GPU, pip's default torch (a CUDA build) is what you want and is left
# to pip. Without a GPU, torch is pinned to the release rnnlab is tested with on the CPU (2.13.0): where a
# CPU wheel of it is offered (a local wheel folder, or PyTorch's CPU index given in RNNLAB_TORCH_INDEX,
# e.g. https://download.pytorch.org/whl/cpu) pip takes that instead of a multi-GB CUDA build.
# RNNLAB_TORCH="torch==X" overrides the choice either way.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
venv="$root/.venv"
stamp="$venv/.rnnlab-installed"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"

if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ] || [ "$root/setup.py" -nt "$stamp" ]; then
    if [ -n "${RNNLAB_TORCH:-}" ]; then
        torch_spec="$RNNLAB_TORCH"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        torch_spec="torch>=2.6"
    else
        torch_spec="torch==2.13.0"
    fi
    index_args=()
    if [ -n "${RNNLAB_TORCH_INDEX:-}" ]; then
        index_args=(--extra-index-url "$RNNLAB_TORCH_INDEX")
    fi
    echo "rnnlab setup: installing $torch_spec and rnnlab (editable) into $venv" >&2
    python -m pip install --quiet --upgrade pip setuptools wheel
    python -m pip install --quiet "${index_args[@]}" "$torch_spec"
    python -m pip install --quiet "${index_args[@]}" -e "$root[dev]"
    touch "$stamp"
fi
