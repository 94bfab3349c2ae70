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
first=$(sed -n 's/^MANAGERS=\([^,:]*\).*/\1/p' "$SWARMBOOK_ENV")
kong=$(sed -n 's/^KONG=\([^,:]*\).*/\1/p' "$SWARMBOOK_ENV")
gitlab=$(sed -n 's/^GITLAB=\([^,:]*\).*/\1/p' "$SWARMBOOK_ENV")
cat <<INFO

Where to look (lab addresses; the lab's services are stand-ins where noted in docs/platform.md):
  demo app        http://$first:9501/        (every node answers: curl each host's address)
  portainer       http://$first:9000/
  gitlab          http://$gitlab/            (sshd on that host moved to 2222; GitLab holds 22)
  kong proxy      http://$kong:8000/          dashboard http://$kong:8080/ (basic auth)
  hosts file      $SWARMBOOK_ENV  (e.g. SWARMBOOK_ENV=$SWARMBOOK_ENV inv swarm.status)
  tear down       inv lab.down
INFO
