#!/usr/bin/env bash
# The main job: set up this machine, bring the lab up and run the whole runbook
# (`inv bootstrap-all`) against it, then show the cluster and where to look.
# Usage: scripts/main.sh [--engine 28.5|26.1|20.10|LIST] [number of lab hosts, default 3]
#   --engine: the Docker engine the lab's hosts offer (default 28.5, the newest: Debian 13 hosts
#   with sid's engine pinned; 26.1: Debian 13; 20.10: Debian 12), or a comma list, one per
#   host, for a mixed cluster (e.g. 20.10,26.1,28.5). The Debian release follows from it.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=28.5
if [ "${1:-}" = "--engine" ]; then engine=${2:?--engine needs a value}; shift 2; fi
bash scripts/setup.sh
inv lab.up --hosts "${1:-3}" --engine "$engine"
export SWARMBOOK_ENV="$PWD/.lab/hosts.env"
inv bootstrap-all
inv swarm.status
inv lab.status
first=$(sed -n 's/^MANAGERS=\([^,:]*\).*/\1/p' "$SWARMBOOK_ENV")
kong=$(sed -n 's/^KONG=\([^,:]*\).*/\1/p' "$SWARMBOOK_ENV")
gitlab=$(sed -n 's/^GITLAB=\([^,:]*\).*/\1/p' "$SWARMBOOK_ENV")
key() { v=$(sed -n "s/^$1=//p" "$SWARMBOOK_ENV" | tail -1); echo "${v:-$2}"; }  # hosts.env value, else default
portainer_port=$(key PORTAINER_PORT 9000)
dashboard_port=$(key KONG_DASHBOARD_PORT 8080)
cat <<INFO

Where to look (lab addresses; the lab's services are stand-ins where noted in docs/platform.md):
  demo app        http://$first:9501/        (every node answers: curl each host's address)
  portainer       http://$first:$portainer_port/
  gitlab          http://$gitlab/            (sshd on that host moved to 2222; GitLab holds 22)
  kong proxy      http://$kong:8000/          dashboard http://$kong:$dashboard_port/ (basic auth)
  hosts file      $SWARMBOOK_ENV
                  export SWARMBOOK_ENV=$SWARMBOOK_ENV   # then any task runs on the lab: inv swarm.status
  lab status      inv lab.status     (hosts, registries, resident memory)
  tear down       inv lab.down
INFO
