#!/usr/bin/env bash
# swarmbook itself (pip, editable, with the test extras) on the python3 first in PATH.
# On a bare Debian 12, python3 has no pip and is "externally managed" (PEP 668): install
# python3-pip, then let pip install beside the distribution's packages. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf 'python-setup: %s\n' "$*" >&2; }

if ! python3 -m pip --version >/dev/null 2>&1; then
    log "installing python3 and pip (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3 python3-pip python3-venv
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || { log "swarmbook needs Python 3.11 or newer; python3 is $(python3 -V 2>&1)"; exit 1; }
flags=(-q --disable-pip-version-check --root-user-action=ignore)
if python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    flags+=(--break-system-packages)
fi
python3 -m pip install "${flags[@]}" -e '.[test]' 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
python3 -c 'import swarmbook, fabric, invoke, dotenv, yaml, pytest' # fail loudly if pip did not deliver
command -v inv >/dev/null && command -v fab >/dev/null || { log "inv/fab not on PATH after pip install"; exit 1; }
