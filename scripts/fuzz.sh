#!/usr/bin/env bash
# Fuzzes the loaders of outside input (IDX, .npy, CSV, model files, ONNX, Keras) with
# libFuzzer for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS]   (default 60: the total, split evenly
# between the harnesses in tests/fuzz/, run one after the other)
#
# Configures build-fuzz/ with clang, -DNNCC_FUZZ=ON -DNNCC_SANITIZE=ON (the
# library and harnesses get ASan+UBSan and libFuzzer coverage), builds
# fuzz_idx, fuzz_npy, fuzz_csv, fuzz_model, fuzz_deploy, fuzz_onnx and fuzz_keras, and runs each on a copy of its seed corpus
# tests/fuzz/corpus/<target>/ (the committed corpus is never modified; the copy
# and everything found go to build-fuzz/fuzz-run/<target>/), with the inputs
# of tests/fuzz/regress/<target>/ as extra seeds.  Exits non-zero if any
# harness crashes, leaks, times out, runs out of memory or breaks one of the
# harness's invariants, and prints the path of each such input.
#
# Turning a crash into a regression test:
#   1. Reproduce: build-fuzz/fuzz/fuzz_<target> <crash file>
#      (the harnesses run files given as arguments once each, without fuzzing).
#   2. Keep the input: mkdir -p tests/fuzz/regress/<target> &&
#      cp <crash file> tests/fuzz/regress/<target>/<short-description>
#   3. Fix the loader.  In the NNCC_FUZZ build, CTest's fuzz_regress_<target>
#      runs every file of tests/fuzz/regress/<target>/ (and the seed corpus)
#      through the harness:  (cd build-fuzz && ctest -R fuzz_regress)
#      and this script seeds the fuzzer with them, so a regression fails CI.
# Regenerate the seed corpora with: python3 tests/fuzz/make_corpus.py
set -euo pipefail
cd "$(dirname "$0")/.."
total=${1:-60}
case $total in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS]" >&2; exit 2 ;; esac
# fuzz_keras: libhdf5 1.10.8 crashes, hangs or allocates gigabytes on mutated
# .h5 files; runtime/io/keras_h5_tree.c confines that to a child process
# (which dies alone, its sanitizer report in the log), so only nncc's own
# failures fail the run.
targets=(idx npy csv model deploy onnx keras)
share=$((total / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1

command -v clang >/dev/null || { echo "fuzz: needs clang (bash scripts/setup.sh)" >&2; exit 1; }
# Stack traces for UBSan reports too (ASan prints them anyway).
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# A leak inside libhdf5 on corrupt files is libhdf5's (tests/fuzz/lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp}
# The harnesses' temporary files, in memory when possible; removed even after a crash.
shm=/dev/shm
[ -w "$shm" ] || shm=${TMPDIR:-/tmp}
NNCC_FUZZ_TMPDIR=$(mktemp -d "$shm/nncc-fuzz.XXXXXX")
export NNCC_FUZZ_TMPDIR
trap 'rm -rf "$NNCC_FUZZ_TMPDIR"' EXIT

dir=build-fuzz
CC=clang cmake -S . -B "$dir" -G Ninja -DCMAKE_C_COMPILER=clang \
  -DNNCC_FUZZ=ON -DNNCC_SANITIZE=ON -DNNCC_BUILD_TESTS=ON >/dev/null
cmake --build "$dir" --target "${targets[@]/#/fuzz_}"

failed=()
for t in "${targets[@]}"; do
  run=$dir/fuzz-run/$t
  rm -rf "$run"
  mkdir -p "$run/corpus" "$run/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$run/corpus/"
  seeds=()
  [ -d "tests/fuzz/regress/$t" ] && seeds+=("tests/fuzz/regress/$t")
  echo "fuzz: fuzz_$t for ${share}s (log: $run/log)"
  status=0
  # -timeout: an input running 10 s is a hang; -max_len: inputs stay small.
  "$dir/fuzz/fuzz_$t" -max_total_time="$share" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$run/artifacts/" "$run/corpus" "${seeds[@]}" \
    >"$run/log" 2>&1 || status=$?
  grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$run/log" | sed 's/^/fuzz:   /' || true
  found=$(find "$run/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
          -o -name 'oom-*' \) | sort)
  if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    echo "fuzz: fuzz_$t FAILED (exit status $status); the end of its log:" >&2
    tail -n 40 "$run/log" | sed 's/^/    /' >&2
    for f in $found; do
      echo "fuzz: failing input: $f" >&2
      echo "fuzz:   reproduce: $dir/fuzz/fuzz_$t $f" >&2
      echo "fuzz:   keep it:   mkdir -p tests/fuzz/regress/$t && cp $f tests/fuzz/regress/$t/" >&2
    done
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no crash in ${total}s (${share}s per harness)"
