#!/usr/bin/env bash
# Configures and builds nncc.  Usage: scripts/build.sh [--sanitize]
# Default build in build/; with --sanitize an ASan+UBSan build in build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
opts=(-DNNCC_WERROR=ON)
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  opts+=(-DNNCC_SANITIZE=ON)
fi
cmake -S . -B "$dir" -G Ninja "${opts[@]}" >/dev/null
cmake --build "$dir"
