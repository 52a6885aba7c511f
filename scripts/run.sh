#!/usr/bin/env bash
# The main job, from a fresh clone: set up, then the quick CPU benchmark of the backends.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
source "$root/scripts/setup.sh"
cd "$root"
rnnlab-bench --quick --device cpu "$@"
