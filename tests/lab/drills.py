"""The engine upgrade drill, shared by tests/lab/test_57_upgrade.py and bench/day2.py.

The lab's 28.5 hosts (Debian 13, sid's docker.io 28.5 pinned) also offer trixie's docker.io
26.1: :func:`older_engine` puts every host back on 26.1 at once with apt (setup, not what is
under test), then :func:`upgrade_through_lb` runs ``docker.upgrade`` (to the newest the sources
offer, 28.5) while the probe loop asks the load balancer and each node every 0.1 s.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

from .probe import Probe, get
from .sb import sb, ssh, until

OLDER = "trixie"  # the suite whose docker.io the drill starts from
# the newest docker.io and docker-cli the host's OLDER suite offers, installed over a newer one
DOWNGRADE = ("export DEBIAN_FRONTEND=noninteractive; "
             f"v=$(apt-cache madison docker.io | awk '$6 ~ /^{OLDER}\\// {{print $3; exit}}'); "
             f"c=$(apt-cache madison docker-cli | awk '$6 ~ /^{OLDER}\\// {{print $3; exit}}'); "
             "[ -n \"$v\" ] && [ -n \"$c\" ] && apt-get install -y -q --no-install-recommends --allow-downgrades "
             "-o Dpkg::Options::=--force-confold \"docker.io=$v\" \"docker-cli=$c\" >/dev/null && "
             "systemctl restart docker")  # (the package leaves the running engine alone: measured)
# what apt installs without a version: the pinned newest (sid's 28.5 on the lab's 28.5 hosts)
NEWEST = ("export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends "
          "-o Dpkg::Options::=--force-confold docker.io docker-cli >/dev/null && systemctl restart docker")


def engines(lab) -> dict[str, str]:
    """hostname -> engine version, as the manager lists the nodes."""
    out = ssh(lab, lab.hosts[0], "docker node ls --format '{{json .}}'").stdout
    return {n["Hostname"]: n["EngineVersion"] for n in map(json.loads, out.splitlines())}


def offers_two_engines(lab) -> bool:
    """The hosts' sources offer an older docker.io (OLDER's) below the newest: a 28.5 lab."""
    out = ssh(lab, lab.hosts[0], "apt-cache madison docker.io").stdout
    suites = re.findall(r"\|\s*\S+\s*\|\s*\S+\s+(\w+)/", out)
    return OLDER in suites and len(set(suites)) > 1


def serving_everywhere(lab) -> bool:
    return all(get(f"http://{h.addr}:9501/", timeout=3) for h in lab.hosts)


def settled(lab, timeout: float = 240) -> None:
    """Every node ready and active, every service running all its tasks, the demo answering on each node."""
    def state():
        nodes = ssh(lab, lab.hosts[0], "docker node ls --format '{{.Status}} {{.Availability}}'", check=False).stdout
        services = ssh(lab, lab.hosts[0], "docker service ls --format '{{.Replicas}}'", check=False).stdout
        counts = [line.split()[0].split("/") for line in services.splitlines() if line.strip()]
        return (nodes.strip() != "" and all(line == "Ready Active" for line in nodes.splitlines())
                and all(a == b for a, b in counts) and serving_everywhere(lab))
    until("the cluster to settle (nodes ready, services converged, demo on every node)", state, bool,
          timeout=timeout, interval=2)


def on_every_host(lab, command: str) -> None:
    with ThreadPoolExecutor(len(lab.hosts)) as ex:
        list(ex.map(lambda h: ssh(lab, h, command), lab.hosts))


def availability(lab, value: str) -> None:
    names = " ".join(h.hostname for h in lab.hosts)
    ssh(lab, lab.hosts[0], f"for n in {names}; do docker node update --availability {value} $n >/dev/null; done")


def older_engine(lab) -> dict[str, str]:
    """Every host back on OLDER's engine (all at once: setup), then settled. Returns engines().
    The nodes are drained first, so no task dies with its engine: the demo's restart policy
    (on-failure, max_attempts 5) counts such deaths, and a node that used them up gets no task."""
    availability(lab, "drain")
    try:
        on_every_host(lab, DOWNGRADE)
    finally:
        availability(lab, "active")
    settled(lab)
    return engines(lab)


def newest_engine(lab) -> None:
    """Undo: every host on the newest engine apt offers, every node active and unmarked (after a failure)."""
    on_every_host(lab, NEWEST)
    for h in lab.hosts:
        ssh(lab, lab.hosts[0], f"docker node update --availability active --label-rm swarmbook.upgrade {h.hostname} "
                               f"|| docker node update --availability active {h.hostname}", check=False)


def upgrade_through_lb(lab, lb_url: str, hosts_env: str, *args: str):
    """``docker.upgrade ARGS`` with the probe loop on; returns (outcome, probe)."""
    targets = {"lb": lb_url, **{h.hostname: f"http://{h.addr}:9501/" for h in lab.hosts}}
    with Probe(targets) as p:
        out = sb(lab, "docker.upgrade", *args, hosts_env=hosts_env, timeout=1800)
    return out, p


def per_node(out) -> dict[str, str]:
    """host -> the reason of its "upgraded" step (total and the parts: drain, packages, ready, activate)."""
    return {e["host"]: e["reason"] for e in out.steps("ok") if e["step"] == "upgraded"}


def seconds(reason: str) -> dict[str, float]:
    """``... in 41.2s (drain 8.1s, packages 20.3s, ready 3.0s, activate 9.8s)`` -> {"total": 41.2, "drain": 8.1, ...}."""
    total = re.search(r" in ([0-9.]+)s", reason)
    parts = dict((k, float(v)) for k, v in re.findall(r"(\w+) ([0-9.]+)s", reason.split("(", 1)[-1]))
    return {"total": float(total.group(1)) if total else float("nan"), **parts}
