#!/usr/bin/env bash
# The whole test suite, lab tests included: set up this machine, bring the lab up, run
# pytest (unit, then the real lab), tear the lab down even when tests fail.
# Extra arguments go to pytest (e.g. scripts/test.sh -k swarm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cleanup() { inv lab.down >/dev/null 2>&1 || echo "lab.down failed; run it by hand" >&2; }
trap cleanup EXIT
python3 -m pytest -p no:cacheprovider "$@" tests
