#!/usr/bin/env bash
# The whole test suite, lab tests included: set up this machine, then
#   1. the unit tests;
#   2. the whole lab suite on the newest engine (Docker 28.5), from a fresh lab;
#   3. the runbook end to end (tests marked e2e: bootstrap-all, rerun 0 changed, stack update,
#      doctor, the appendix with fab -H) on the other engines, 26.1 and 20.10, and on a mixed
#      cluster (one host per engine), each from a fresh lab.
# The lab is torn down at the end even when tests fail; every stage runs, and the script fails
# when any stage did. Extra arguments go to every pytest run (e.g. scripts/test.sh -x).
# SWARMBOOK_TEST_ENGINES="26.1 20.10 20.10,26.1,28.5" picks the end-to-end stages (empty: none).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cleanup() { inv lab.down >/dev/null 2>&1 || echo "lab.down failed; run it by hand" >&2; }
trap cleanup EXIT
pytest=(python3 -m pytest -p no:cacheprovider)
failed=()
stage() {  # stage NAME ENGINE PYTEST-ARGS...: one pytest run on a fresh lab offering ENGINE
    local name=$1 engine=$2; shift 2
    local t0=$SECONDS
    inv lab.down >/dev/null
    echo "=== $name (engine $engine)"
    if SWARMBOOK_LAB_ENGINE=$engine "${pytest[@]}" "$@"; then
        echo "=== $name: passed in $((SECONDS - t0)) s"
    else
        echo "=== $name: FAILED after $((SECONDS - t0)) s"; failed+=("$name")
    fi
}
"${pytest[@]}" "$@" tests/unit || failed+=("unit")
stage "lab suite" 28.5 -m "not e2e" "$@" tests/lab
for engine in ${SWARMBOOK_TEST_ENGINES-26.1 20.10 20.10,26.1,28.5}; do
    stage "runbook end to end" "$engine" -m e2e "$@" tests/lab
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "all stages passed"
