#!/bin/bash
# test_bench.sh — `nncc bench` on the smallest benchmark model: the last line
# is one JSON object with the required keys, all positive numbers; bad
# options are usage errors (exit 2), a model that is not compiled exits 1.
#   test_bench.sh NNCC SOURCE_DIR
set -u
nncc=$1 src=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$nncc" bench "$src/bench/models/seed_mlp.c" --iters 3) || fail "bench exited $?"
last=$(printf '%s\n' "$out" | tail -n 1)
case $last in "{"*"}") ;; *) fail "last line is not a JSON object: $last" ;; esac
printf '%s\n' "$last" | grep -q '"model": "seed_mlp"' || fail "model key: $last"
for k in compile_s train_samples_per_s infer_samples_per_s latency_b1_us peak_gflops step_gflops \
         arena_bytes arena_unplanned_bytes; do
    v=$(printf '%s\n' "$last" | grep -o "\"$k\": [0-9.e+-]*" | sed 's/.*: //')
    [ -n "$v" ] || fail "key $k missing or not a number: $last"
    awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }' || fail "$k is not positive: $v"
done
# The per-kernel profile: a header and at least one timed kernel (seed_mlp's
# GEMMs are dense layers).
printf '%s\n' "$out" | grep -q "^slowest kernels of the training step" || fail "profile header"
printf '%s\n' "$out" | grep -Eq "^ +[0-9.]+ +[0-9.]+% +[0-9.]+ +matmul " || fail "profile rows"
if command -v python3 >/dev/null; then
    printf '%s\n' "$last" | python3 -c 'import json,sys; json.loads(sys.stdin.read())' \
        || fail "last line is not valid JSON"
fi

expect() { # expected-status args...
    local want=$1; shift
    "$nncc" bench "$@" >/dev/null 2>&1
    local got=$?
    [ "$got" = "$want" ] || fail "nncc bench $* exited $got, expected $want"
}
m=$src/bench/models/seed_mlp.c
expect 2
expect 2 "$m" --batch 0
expect 2 "$m" --batch x
expect 2 "$m" --iters
expect 2 "$m" --threads -1
expect 2 "$m" --train --infer
expect 2 "$m" --bogus
expect 2 "$m" "$m"
expect 1 "$src/bench/models/does_not_exist.c"
expect 1 "$src/examples/seed_cnn.c" --iters 1   # not compiled: cannot train
expect 0 --help
echo "test_bench: ok"
