"""Swarm membership: init the leader, join managers and workers, converge roles, show the cluster.

Assumes Docker runs on every node (docker.install). The first manager leads (inits the swarm,
others join it); when it is in no swarm but a later-listed manager runs one (after
swarm.restore onto that one), the others join that swarm instead of a second one. Roles follow hosts.env (quorum-safe order: see
swarmbook.membership); nodes hosts.env does not list are reported, or removed with --prune --yes. Under
``fab -H a,b,c`` every given host is a manager (the runbook's three-machine appendix)
unless hosts.env lists it in WORKERS or ``--workers`` names it.
"""

from __future__ import annotations

import json as jsonlib
import threading
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import facts, swarmcmd, nodecmd, membership, nodeops, report, validate
else:
    facts = lazy("swarmbook.facts")
    swarmcmd = lazy("swarmbook.swarmcmd")
    nodecmd = lazy("swarmbook.nodecmd")
    membership = lazy("swarmbook.membership")
    nodeops = lazy("swarmbook.nodeops")
    report = lazy("swarmbook.report")
    validate = lazy("swarmbook.validate")


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


def _validate(settings, workers=None, prune=False, yes=False, timeout=300, targets=()):
    _labels(settings)
    if workers is not None:
        hosts = {t.host for t in targets}
        for w in workers.split(","):
            if not w.strip():
                refuse("--workers has an empty entry")
            if targets and w.strip() not in hosts:
                refuse(f"--workers {w.strip()!r} is not one of the target hosts ({', '.join(sorted(hosts))})")
    if prune and not yes:
        refuse("--prune removes every node hosts.env does not list: add --yes to confirm "
               "(swarm.init without --prune names them)")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="nodes", validate=_validate, help={
    "workers": "comma list of hosts (among the targets) to join as workers; default WORKERS",
    "prune": "also remove nodes hosts.env no longer lists (demote, drain, leave, node rm); needs --yes",
    "yes": "confirm --prune",
    "timeout": "seconds to wait for a pruned node's tasks to run elsewhere (default 300)",
})
def init(run: Run, specs: list[HostSpec], workers=None, prune=False, yes=False, timeout=300):
    """Converge the swarm to MANAGERS/WORKERS: init, join, promote/demote (quorum-safe), report or prune others."""
    managers, worker_specs = _roles(run.settings, specs, workers)
    if not managers:
        refuse("no manager among the target hosts (every host is listed as a worker)")
    leader_spec = managers[0]
    adv_mode = run.settings["SWARM_ADVERTISE"]
    states: dict[str, tuple[swarmcmd.SwarmState, str]] = {}
    lead_facts: dict = {}  # the leader's tokens and nodes, read with its first probe
    lock = threading.Lock()

    def probe(h: Host) -> None:
        is_leader = h.spec == leader_spec
        f = h.probe(facts.docker_info(), swarmcmd.advertise_fact(leader_spec.host),
                    *([swarmcmd.TOKENS, swarmcmd.NODES, nodecmd.NODE_LIST] if is_leader else []))
        st = swarmcmd.parse_swarm(f["docker_info"])
        if is_leader and st.active and st.is_manager:
            lead_facts.update(f)
        if st.state == "pending":  # e.g. a node that just restarted and is reconnecting
            h.wait("swarm membership to settle (pending)",
                   lambda: swarmcmd.parse_swarm(h.probe(facts.docker_info())["docker_info"]).state != "pending",
                   timeout=90, interval=2)
            st = swarmcmd.parse_swarm(h.facts_cache["docker_info"])
        addr = adv_mode if adv_mode != "auto" else (h.name if validate.is_ip(h.name) else f["src_addr"])
        with lock:
            states[h.name] = (st, addr)

    run.each(specs, probe)
    live = _live_manager(managers, states)
    if live is not None and live != leader_spec:
        # the first manager lost its swarm state (e.g. after swarm.restore onto another one):
        # it joins the swarm the others still run instead of making a second one
        run.reporter.note(f"{leader_spec.host} is not a manager of a swarm and {live.host} is: the others join "
                          f"{live.host}'s swarm", level="warning")
        leader_spec = live
        lead_facts.clear()
        run.one(live, lambda h: lead_facts.update(h.probe(facts.docker_info(), swarmcmd.TOKENS, swarmcmd.NODES,
                                                          nodecmd.NODE_LIST)))
    wanted = _wanted(specs, managers, states)
    plan = membership.plan(lead_facts.get("node_list") or [], wanted, prune=prune)
    for w in plan.warnings:
        run.reporter.note(w, level="warning")
    if plan.problems:  # refused before anything changes
        refuse("; ".join(plan.problems))
    leader = _lead(run, leader_spec, states, lead_facts)
    if leader is None:
        return
    joined: list[str] = []
    run.each([s for s in specs if s is not leader_spec],
             lambda h: _member(h, leader, states, joined, is_manager=h.spec in managers))
    run.one(leader_spec, lambda h: _converge_roles(run, h, plan, specs, managers, states, joined, prune, int(timeout)))
    if not run.check:
        _apply_labels(run, leader, _labels(run.settings))


def _live_manager(managers, states):
    """The first listed manager when it manages a swarm (or none does), else the first that does."""
    def manages(s) -> bool:
        st = states.get(s.host, (None, ""))[0]
        return st is not None and st.active and st.is_manager
    return next((s for s in managers if manages(s)), None) if not manages(managers[0]) else managers[0]


def _wanted(specs, managers, states) -> list:
    """What hosts.env wants of each host, with what its engine said of itself (a host whose engine
    did not answer, or is pending/locked/in error, is matched by address or hostname instead)."""
    out = []
    for s in specs:
        st = states.get(s.host, (None, ""))[0]
        answered = st is not None and st.state in ("inactive", "active")
        out.append(membership.Wanted(s.host, "manager" if s in managers else "worker", answered=answered,
                                     node_id=st.node_id if answered and st.active else ""))
    return out


def _converge_roles(run: Run, h: Host, plan, specs, managers, states, joined: list[str], prune: bool,
                    timeout: int) -> None:
    """Promote, then demote (each re-checked against quorum as the cluster is now), forget stale
    entries, then prune. ``plan`` (made before any change) is what check mode shows; a real run
    plans again from the nodes as they are after the joins."""
    if not run.check and (joined or plan.actions):  # as the cluster is now: joiners took their role, stale entries may be gone
        plan = membership.plan(nodeops.nodes(h), _wanted(specs, managers, states), prune=prune, joiner_votes=False)
        if plan.problems:
            h.fail("membership", "; ".join(plan.problems))
    for a in plan.of("promote"):
        if not nodeops.act(run, h, a.name, "promote to manager", swarmcmd.promote_cmd(a.node.id), a.reason):
            return
    nodeops.wait_reachable(h, [a.node.id for a in plan.of("promote")])
    for a in plan.of("demote"):
        refusal = "" if run.check else membership.demote_refusal(a.name, a.node.id, nodeops.nodes(h))
        if refusal:
            run.emit(a.name, "demote to worker", report.FAILED, refusal)
            return
        if not nodeops.act(run, h, a.name, "demote to worker", nodecmd.demote_cmd(a.node.id), a.reason):
            return
    for a in plan.of("label"):  # before its old entry goes: placement constraints read these
        if not nodeops.act(run, h, a.name, "labels", swarmcmd.label_add_cmd(a.node.id, dict(a.labels)), a.reason):
            return
    for a in plan.of("forget"):  # a node that lost its swarm state and joined again would count twice
        if not nodeops.act(run, h, a.name, f"remove stale node entry {a.node.id[:12]} ({a.node.label})",
                           swarmcmd.remove_node_cmd(a.node.id, demote=False), a.reason):
            return
    if prune:
        nodeops.prune(run, h, plan, timeout)


class _Leader:
    def __init__(self, host: Host, addr: str, tokens: dict[str, str], nodes: list[dict]):
        self.host, self.addr, self.tokens, self.nodes = host, addr, tokens, nodes
        self.node_ids = swarmcmd.node_ls_ids(nodes)


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
        states[spec.host] = (swarm, addr)  # after an init: its node ID, so the roles phase knows it
        result.append(_Leader(h, swarm.node_addr or addr, f["tokens"], f["nodes"] or []))

    run.one(spec, body)
    return result[0] if result else None


def _member(h: Host, leader: _Leader, states, joined: list[str], *, is_manager: bool) -> None:
    st, addr = states.get(h.name, (None, ""))
    role = "manager" if is_manager else "worker"
    if st is None:
        h.fail("swarm join", "not probed")
    if st.active and st.node_id in leader.node_ids:
        if st.is_manager == is_manager:
            h.ok(f"swarm {role}", "in this swarm")
        # otherwise its role is changed after every join, in a quorum-safe order (_converge_roles)
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
    now = swarmcmd.parse_swarm(h.probe(facts.docker_info())["docker_info"])
    states[h.name] = (now, addr)
    joined.append(h.name)


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
