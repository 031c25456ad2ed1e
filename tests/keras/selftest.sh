#!/bin/sh
# selftest.sh -- keras_check.py run on the fixtures themselves.  For each <file>.json of
# the given Keras version:
#   own predictions on the 8 recorded rows + one epoch of fit on those rows (batch 4) with
#   --expect-iterations = the recorded count                    -> must exit 0
#   predictions off by 1e-3                                     -> must exit 1
#   --expect-iterations off by one                              -> must exit 1
#   a Keras that is not importable (--keras 2 under a Python without tf_keras, checked
#   only when that is the case)                                 -> must exit 77
# Usage: tests/keras/selftest.sh PYTHON 2|3 [MODEL...]   (default: every model)
#   e.g. tests/keras/selftest.sh ~/k215/bin/python 2; tests/keras/selftest.sh python3 3
# Fashion-MNIST fixtures are included when /usr/share/datasets/fashion-mnist exists.
set -u
PY=$1; K=$2; shift 2
MODELS=${*:-}
HERE=$(cd "$(dirname "$0")" && pwd); FIX=$HERE/fixtures
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export TF_CPP_MIN_LOG_LEVEL=3
fails=0; n=0

expect() {  # expect WANT_RC LABEL -- keras_check args...
    want=$1; label=$2; shift 3
    "$PY" "$HERE/keras_check.py" "$@" > "$T/out" 2>/dev/null; rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: $label: exit $rc, expected $want"; cat "$T/out"; fails=$((fails + 1))
    fi
}

for json in "$FIX"/*.k"$K".*.json; do
    f=${json%.json}
    if [ -n "$MODELS" ]; then
        m=$(basename "$f"); m=${m%%.k[23].*}
        case " $MODELS " in *" $m "*) ;; *) continue ;; esac
    fi
    # the 8 predicted rows, their labels and predictions as .npy (and a wrong copy)
    "$PY" - "$json" "$HERE" "$T" <<'PYEOF' 2>/dev/null || { echo "skip $f (no data)"; continue; }
import json, os, sys
import numpy as np
j = json.load(open(sys.argv[1])); here, t = sys.argv[2], sys.argv[3]
sys.path.insert(0, here)
import make_fixtures
d = j["data"]
if d["source"] == "npy":
    x = np.load(os.path.join(here, "fixtures", d["x"]))
    y = np.load(os.path.join(here, "fixtures", d["y"]))
else:
    x, y, _ = make_fixtures.fashion(d["labels"])
r = j["predict_rows"]
p = np.array(j["predictions"]["values"], np.float32).reshape(j["predictions"]["shape"])
np.save(t + "/x.npy", x[:r]); np.save(t + "/y.npy", y[:r])
np.save(t + "/p.npy", p); np.save(t + "/pbad.npy", p + np.float32(1e-3))
open(t + "/it", "w").write(str(j["iterations"]))
PYEOF
    it=$(cat "$T/it")
    expect 0 "$f fit" -- "$f" --keras "$K" --x "$T/x.npy" --expect "$T/p.npy" \
        --fit-y "$T/y.npy" --fit-batch 4 --expect-iterations "$it"
    grep -q "iterations $it -> $((it + 2))" "$T/out" ||
        { echo "FAIL: $f: no 'iterations $it -> $((it + 2))' line"; fails=$((fails + 1)); }
    expect 1 "$f wrong predictions" -- "$f" --keras "$K" --x "$T/x.npy" --expect "$T/pbad.npy"
    expect 1 "$f wrong iterations" -- "$f" --keras "$K" --x "$T/x.npy" --expect "$T/p.npy" \
        --fit-y "$T/y.npy" --fit-batch 4 --expect-iterations "$((it + 1))"
    n=$((n + 1)); echo "ok $(basename "$f")"
done
if ! "$PY" -c "import tf_keras" 2>/dev/null; then
    expect 77 "--keras 2 without tf_keras" -- "$FIX/seq_mlp.k2.h5" --keras 2 \
        --x "$T/x.npy" --expect "$T/p.npy"
    echo "ok exit 77 without tf_keras"
fi
echo "$n files, $fails failures"
[ "$fails" -eq 0 ]
