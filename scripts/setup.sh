#!/usr/bin/env bash
# Everything swarmbook and its lab need on a fresh Debian 12 machine, as root: the outer
# machine's packages and dockerd (scripts/outer-setup.sh) and swarmbook itself (pip,
# editable, with the test extras). Idempotent: fast when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/outer-setup.sh
bash scripts/python-setup.sh
# Bytecode for this checkout, as pip does for installed packages: `inv` and `fab` then start
# without compiling ~60 modules (which matters where PYTHONDONTWRITEBYTECODE is set).
python3 -m compileall -q swarmbook tasks fabfile.py >/dev/null
