#!/usr/bin/env bash
# Prepare the OUTER machine (bare Debian 12, run as root) for the swarmbook lab:
# packages, a running dockerd (no systemd needed), and forwarding for the lab bridge.
# Idempotent and fast when everything is already in place.
set -euo pipefail

PKGS=(docker.io debootstrap docker-registry openssh-client apache2-utils openssl
      busybox-static iproute2 iptables ca-certificates gnupg rsync)
# gitlab-ci-local runs the app-repo pipeline (templates/.gitlab-ci.yml) in tests/lab/test_62_pipeline.py:
# pinned, the last release that runs on Node 20 and 18 (4.66+ need Node 22); rsync is what it copies
# a job's files with.
GCL_VERSION=4.65.1
GCL_PREFIX=/opt/swarmbook/gitlab-ci-local
# Every lab instance's bridge (swarmbook-lab, swarmbook-lab1, ...): iptables' "+" wildcard.
LAB_BRIDGE=${SWARMBOOK_LAB_BRIDGE:-swarmbook-lab+}
DOCKERD_LOG=/var/log/swarmbook-dockerd.log

log() { printf 'outer-setup: %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }

# 1. packages (only call apt when something is missing)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# 1b. gitlab-ci-local (npm); Node.js from Debian where the machine has none
if ! command -v npm >/dev/null; then
    log "installing: nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ "$("$GCL_PREFIX/node_modules/.bin/gitlab-ci-local" --version 2>/dev/null)" != "$GCL_VERSION" ]; then
    log "installing gitlab-ci-local $GCL_VERSION into $GCL_PREFIX"
    mkdir -p "$GCL_PREFIX"
    npm install --prefix "$GCL_PREFIX" --no-audit --no-fund --loglevel=error "gitlab-ci-local@$GCL_VERSION" >/dev/null
fi

# 2. outer dockerd (background process, no systemd)
if ! docker info >/dev/null 2>&1; then
    if ! pgrep -x dockerd >/dev/null; then
        log "starting dockerd (log: $DOCKERD_LOG)"
        nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    docker info >/dev/null 2>&1 || { log "dockerd did not come up, see $DOCKERD_LOG"; exit 1; }
fi

# 3. forwarding: dockerd sets the FORWARD policy to DROP; allow the lab bridges explicitly
sysctl -qw net.ipv4.ip_forward=1
chain=FORWARD
iptables -nL DOCKER-USER >/dev/null 2>&1 && chain=DOCKER-USER
for rule in "-i $LAB_BRIDGE -j ACCEPT" "-o $LAB_BRIDGE -j ACCEPT"; do
    # shellcheck disable=SC2086
    iptables -C "$chain" $rule 2>/dev/null || iptables -I "$chain" 1 $rule
done
log "ok (docker $(docker version -f '{{.Server.Version}}' 2>/dev/null), forward rules in $chain for $LAB_BRIDGE)"
