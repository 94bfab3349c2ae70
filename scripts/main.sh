#!/usr/bin/env bash
# The main job: set up this machine, bring the lab up and run the whole runbook
# (`inv bootstrap-all`) against it, then show the cluster and where to look.
# Usage: scripts/main.sh [number of lab hosts, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
inv lab.up --hosts "${1:-3}"
export SWARMBOOK_ENV="$PWD/.lab/hosts.env"
inv bootstrap-all
inv swarm.status
echo
echo "The lab's hosts file: $SWARMBOOK_ENV (run any task against it, e.g. inv swarm.status)."
echo "Demo service: curl http://<host address>:9501/ on any lab host address above."
echo "Tear down: inv lab.down"
