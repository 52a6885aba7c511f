#!/usr/bin/env bash
# The test suite, from a fresh clone: set up, lint, then pytest (Triton kernels under the CPU interpreter
# where there is no GPU; tests marked gpu are skipped there).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$root/scripts/setup.sh"
cd "$root"
ruff check rnnlab kernels hydra_plugins tests experiments
python -m pytest "$@"
