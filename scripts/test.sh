#!/usr/bin/env bash
# The whole test suite, lab tests included: set up this machine, start from a fresh lab (one
# left up by scripts/main.sh is taken down first: the lab tests begin with Docker not yet
# installed), run pytest (tests/lab, then tests/unit; the lab comes up in the first lab test),
# tear the lab down at the end even when tests fail.
# Extra arguments go to pytest (e.g. scripts/test.sh -k swarm).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cleanup() { inv lab.down >/dev/null 2>&1 || echo "lab.down failed; run it by hand" >&2; }
inv lab.down >/dev/null
trap cleanup EXIT
python3 -m pytest -p no:cacheprovider "$@" tests
