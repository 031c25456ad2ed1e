#!/bin/bash
# run_fixture.sh — the checker's own test: runs check_layers.sh on a fixture
# tree and compares its report with the fixture's expected.txt.
#
#   run_fixture.sh FIXTURE_DIR [OBJECT.o...]
#
# Passes (exit 0) when the checker prints exactly the lines of expected.txt
# and exits 1 for a non-empty expected.txt, 0 for an empty one; otherwise
# prints the difference and exits 1.  Exact lines, not a pattern: a fixture
# proves both that each fault is reported (file, line, header or symbol,
# rule) and that nothing else is.
set -u
[ $# -ge 1 ] || { echo "usage: run_fixture.sh FIXTURE_DIR [OBJECT.o...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
fixture=$1
shift
expected=$fixture/expected.txt
[ -r "$expected" ] || { echo "run_fixture: no $expected" >&2; exit 2; }

out=$(bash "$here/check_layers.sh" "$fixture" "$@")
got=$?
want=0
[ -s "$expected" ] && want=1
printf '%s\n' "$out"
status=0
if [ "$got" != "$want" ]; then
    echo "FAIL: check_layers.sh exited $got, expected $want" >&2
    status=1
fi
if ! printf '%s' "$out${out:+$'\n'}" | diff -u "$expected" - >&2; then
    echo "FAIL: the report differs from $expected (diff above: - expected, + got)" >&2
    status=1
fi
exit $status
