"""Swarm membership: init the leader, join managers and workers, show the cluster.

Assumes Docker runs on every node (docker.install). The first manager is the leader. Under
``fab -H a,b,c`` every given host is a manager (the runbook's three-machine appendix)
unless hosts.env lists it in WORKERS or ``--workers`` names it.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
import threading
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

facts = lazy("swarmbook.facts")
swarmcmd = lazy("swarmbook.swarmcmd")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _labels(settings) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in settings["NODE_LABELS"]:
        host, sep, kv = item.partition(":")
        key, eq, value = kv.partition("=")
        if not sep or not eq or not key:
            refuse(f"NODE_LABELS entry {item!r} is not host:key=value")
        out.setdefault(host, {})[key] = value
    return out


def _roles(settings, specs, workers):
    names = [w.strip() for w in workers.split(",")] if workers else [h.host for h in settings.group("workers")]
    managers = [s for s in specs if s.host not in names]
    return managers, [s for s in specs if s.host in names]


def _validate(settings, workers=None, targets=()):
    _labels(settings)
    if workers is not None:
        hosts = {t.host for t in targets}
        for w in workers.split(","):
            if not w.strip():
                refuse("--workers has an empty entry")
            if targets and w.strip() not in hosts:
                refuse(f"--workers {w.strip()!r} is not one of the target hosts ({', '.join(sorted(hosts))})")


@cluster_task(group="nodes", validate=_validate, help={
    "workers": "comma list of hosts (among the targets) to join as workers; default WORKERS",
})
def init(run: Run, specs: list[HostSpec], workers=None):
    """Init the swarm on the first manager and join the other managers and the workers."""
    managers, worker_specs = _roles(run.settings, specs, workers)
    if not managers:
        refuse("no manager among the target hosts (every host is listed as a worker)")
    if len(managers) % 2 == 0:
        run.reporter.note(f"{len(managers)} managers: an even number adds no fault tolerance "
                          f"(use {len(managers) - 1} or {len(managers) + 1})", level="warning")
    leader_spec = managers[0]
    adv_mode = run.settings["SWARM_ADVERTISE"]
    states: dict[str, tuple[swarmcmd.SwarmState, str]] = {}
    lead_facts: dict = {}  # the leader's tokens and nodes, read with its first probe
    lock = threading.Lock()

    def probe(h: Host) -> None:
        is_leader = h.spec == leader_spec
        f = h.probe(facts.docker_info(), swarmcmd.advertise_fact(leader_spec.host),
                    *([swarmcmd.TOKENS, swarmcmd.NODES] if is_leader else []))
        st = swarmcmd.parse_swarm(f["docker_info"])
        if is_leader and st.active and st.is_manager:
            lead_facts.update(f)
        if st.state == "pending":  # e.g. a node that just restarted and is reconnecting
            h.wait("swarm membership to settle (pending)",
                   lambda: swarmcmd.parse_swarm(h.probe(facts.docker_info())["docker_info"]).state != "pending",
                   timeout=90, interval=2)
            st = swarmcmd.parse_swarm(h.facts_cache["docker_info"])
        addr = adv_mode if adv_mode != "auto" else (h.name if _is_ip(h.name) else f["src_addr"])
        with lock:
            states[h.name] = (st, addr)

    run.each(specs, probe)
    leader = _lead(run, leader_spec, states, lead_facts)
    if leader is None:
        return
    run.each([s for s in specs if s is not leader_spec],
             lambda h: _member(h, leader, states, is_manager=h.spec in managers))
    if not run.check:
        _apply_labels(run, leader, _labels(run.settings))


class _Leader:
    def __init__(self, host: Host, addr: str, tokens: dict[str, str], nodes: list[dict]):
        self.host, self.addr, self.tokens, self.nodes = host, addr, tokens, nodes
        self.node_ids = swarmcmd.node_ls_ids(nodes)
        self.lock = threading.Lock()


def _lead(run: Run, spec: HostSpec, states, probed: dict) -> _Leader | None:
    if spec.host not in states:
        run.reporter.note(f"leader {spec.host} did not answer; nothing joined", level="error")
        return None
    st, addr = states[spec.host]
    result: list[_Leader] = []

    def body(h: Host) -> None:
        if st.state == "unknown":
            h.needs("swarm leader", f"{st.error or 'docker does not answer'} (run docker.install first)")
        if st.state == "inactive":
            if not addr:
                h.fail("swarm init", "no advertise address found (set SWARM_ADVERTISE)")
            h.change("swarm init", swarmcmd.init_cmd(addr), reason=f"leader, advertising {addr}")
            if h.check:
                result.append(_Leader(h, addr, {}, []))
                return
        elif st.active and st.is_manager:
            h.ok("swarm leader", f"cluster {st.cluster_id[:12]}")
        elif st.active:
            h.fail("swarm leader", "is a worker of a swarm; promote it or list another manager first")
        else:
            h.fail("swarm leader", f"swarm state {st.state}: {st.error or 'see docker info'}")
        already = st.active and st.is_manager and probed.get("tokens")
        f = probed if already else h.probe(swarmcmd.TOKENS, swarmcmd.NODES, facts.docker_info())  # one round trip
        if not f["tokens"]:
            h.fail("join token", "docker swarm join-token failed on the leader")
        for t in f["tokens"].values():
            run.reporter.mask.add(t)
        swarm = swarmcmd.parse_swarm(f["docker_info"])
        result.append(_Leader(h, swarm.node_addr or addr, f["tokens"], f["nodes"] or []))

    run.one(spec, body)
    return result[0] if result else None


def _member(h: Host, leader: _Leader, states, *, is_manager: bool) -> None:
    st, addr = states.get(h.name, (None, ""))
    role = "manager" if is_manager else "worker"
    if st is None:
        h.fail("swarm join", "not probed")
    if st.active and st.node_id in leader.node_ids:
        if is_manager and not st.is_manager:
            h.change("promote to manager", None, reason="was a worker")
            if not h.check:
                leader.host.run(swarmcmd.promote_cmd(st.node_id), step="promote")
        else:
            h.ok(f"swarm {role}", "already in this swarm")
        _remove_stale_entries(h, leader, st.node_id, st.name)
        return
    if st.active:
        h.fail("swarm join", f"already in another swarm (node {st.node_id[:12]}); "
                             "run `docker swarm leave` there first if that is intended")
    if st.state == "unknown":
        h.needs("swarm join", "docker does not answer (run docker.install first)")
    if st.state != "inactive":  # error / locked / still pending: joining again would make a second node
        h.fail("swarm join", f"swarm state {st.state}{': ' + st.error if st.error else ''}; "
                             "fix or `docker swarm leave --force` there first")
    if h.check:
        h.change(f"join as {role}", None, reason=f"leader {leader.addr}")
        return
    body = swarmcmd.join_body(leader.tokens[role], leader.addr, addr)
    h.change(f"join as {role}", swarmcmd.join_cmd(), stdin=body, reason=f"leader {leader.addr}")
    joined = swarmcmd.parse_swarm(h.probe(facts.docker_info())["docker_info"])
    _remove_stale_entries(h, leader, joined.node_id, h.facts_cache["docker_info"].get("Name", ""))


def _remove_stale_entries(h: Host, leader: "_Leader", node_id: str, hostname: str) -> None:
    """Drop entries this host left behind (same hostname, Down, another ID): a node that lost its
    swarm state (e.g. killed) and rejoined would otherwise count twice, as a manager against quorum."""
    for n in leader.nodes:
        other = n.get("ID", "").rstrip("*").strip()
        if n.get("Hostname") == hostname and other != node_id and n.get("Status") == "Down":
            with leader.lock:
                leader.host.change(f"remove stale node entry {other[:12]} ({hostname})",
                                   swarmcmd.remove_node_cmd(other, demote=bool(n.get("ManagerStatus"))),
                                   reason="left behind by this host's earlier membership")


def _apply_labels(run: Run, leader: _Leader, labels: dict[str, dict[str, str]]) -> None:
    if not labels:
        return
    nodes = leader.host.probe(swarmcmd.NODES)["nodes"] or []
    by_name = {n.get("Hostname"): n.get("ID", "").rstrip("*").strip() for n in nodes}
    for host, wanted in labels.items():
        node_id = by_name.get(host) or _node_by_addr(leader.host, host)
        if not node_id:
            run.reporter.note(f"NODE_LABELS: no swarm node {host}", level="warning")
            continue
        got = jsonlib.loads(leader.host.run(swarmcmd.node_labels_cmd(node_id)).stdout or "{}") or {}
        add = {k: v for k, v in wanted.items() if got.get(k) != v}
        if not add:
            leader.host.ok(f"labels on {host}")
            continue
        leader.host.change(f"labels on {host}", swarmcmd.label_add_cmd(node_id, add),
                           reason=", ".join(f"{k}={v}" for k, v in add.items()))


def _node_by_addr(leader: Host, addr: str) -> str:
    out = leader.try_run(swarmcmd.NODE_ADDRS_CMD).stdout
    for line in out.splitlines():
        node_id, _, node_addr = line.partition(" ")
        if node_addr.strip() == addr:
            return node_id
    return ""


@cluster_task(group="managers", locks=False, help={})
def status(run: Run, specs: list[HostSpec]):
    """Show nodes (role, availability, leader, engine) and services, from the first manager that answers."""
    shown: list[bool] = []

    def body(h: Host) -> None:
        f = h.probe(swarmcmd.NODES, swarmcmd.SERVICES)
        if f["nodes"] is None:
            h.needs("swarm status", "not a swarm manager (run swarm.init)")
        swarmcmd.print_status(f["nodes"], f["services"], json_lines=run.reporter.json_lines, out=run.reporter.out)
        h.ok("swarm status", f"{len(f['nodes'])} nodes, {len(f['services'] or [])} services")
        shown.append(True)

    for spec in specs:  # a manager that does not answer is a failed host (exit 1), as in any task
        run.one(spec, body)
        if shown:
            return


ns = Collection("swarm", init, status)
