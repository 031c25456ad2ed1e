#!/usr/bin/env bash
# Builds nncc and runs the whole test suite through CTest.
# Usage: scripts/test.sh [--sanitize]   (--sanitize: the ASan+UBSan build)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
cd "$dir"
ctest --output-on-failure -j2
