#!/usr/bin/env bash
# Runs every file in the given folders (missing folders are skipped) through
# a libFuzzer harness once, without fuzzing: the CTest regression tests of the
# NNCC_FUZZ build.  Fails when any input crashes, leaks or breaks an invariant.
# Usage: run_inputs.sh HARNESS DIR...
set -euo pipefail
harness=$1
shift
inputs=()
for dir in "$@"; do
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' f; do inputs+=("$f"); done < <(find "$dir" -type f -print0 | sort -z)
done
if [ ${#inputs[@]} -eq 0 ]; then
  echo "run_inputs: no inputs in $*"
  exit 0
fi
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# A leak inside libhdf5 on corrupt files is libhdf5's (lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp}
NNCC_FUZZ_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/nncc-fuzz.XXXXXX")
export NNCC_FUZZ_TMPDIR
trap 'rm -rf "$NNCC_FUZZ_TMPDIR"' EXIT
echo "run_inputs: ${#inputs[@]} inputs through $(basename "$harness")"
"$harness" -rss_limit_mb=2048 -timeout=60 "${inputs[@]}"
