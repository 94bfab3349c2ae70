"""The swarm's health as its managers' engine API tells it (inv doctor): manager quorum, nodes
that are not ready, services that have not converged (with their tasks' errors), and each
node's TLS certificate (days left); and tasks swarm gave up restarting (``givenup``).

Facts are GETs on the local engine API (one round trip with the rest of doctor's probe); every
check is a pure function of their JSON, tested on answers recorded from real engines
(``scripts/record-engine-facts.py --doctor``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .doctorcmd import Check
from .facts import Fact, engine_get_cmd

CLUSTER = "(cluster)"
CERT_WARN_DAYS = 30
CERT_FILE = "swarm/certificates/swarm-node.crt"  # under the engine's data root
DEFAULT_DATA_ROOT = "/var/lib/docker"


_RPC_PREFIX = re.compile(r"^rpc error: code = \w+ desc = ")  # the manager's gRPC wrapping, no news to a reader


@dataclass(frozen=True)
class Refused:
    """The engine answered with an HTTP error, e.g. 503 "The swarm does not have a leader"
    (quorum lost) or "This node is not a swarm manager"."""

    message: str


def parse_answer(text: str, rc: int) -> Any:
    """The engine's JSON answer; :class:`Refused` for an error answer (curl --fail-with-body
    exits 22 and prints it); None when the engine did not answer."""
    try:
        body = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None
    if rc == 0:
        return body
    if isinstance(body, dict) and body.get("message"):
        return Refused(_RPC_PREFIX.sub("", str(body["message"]).strip()))
    return None


def _manager_fact(name: str, path: str) -> Fact:
    return Fact(name, engine_get_cmd(path, error_body=True), parse_answer)


# What a manager knows of the cluster: every node (role, state, manager reachability), every
# service with its running/desired task counts (status=true: API 1.41, Docker 20.10+), and
# every task the cluster keeps (current ones and up to TaskHistoryRetentionLimit old ones per
# slot, whose Status.Err says why a task was rejected or failed).
NODES = _manager_fact("swarm_nodes", "/nodes")
SERVICES = _manager_fact("swarm_services", "/services?status=true")
TASKS = _manager_fact("swarm_tasks", "/tasks")
MANAGER_FACTS = (NODES, SERVICES, TASKS)


def node_cert_cmd() -> str:
    """Print this node's swarm certificate (PEM) from the engine's data root (/info names it;
    /var/lib/docker when the engine does not answer). Fails when there is none (not in a swarm)."""
    root = engine_get_cmd("/info") + " | sed -n 's/.*\"DockerRootDir\":\"\\([^\"]*\\)\".*/\\1/p'"
    return f'root=$({root}); cat "${{root:-{DEFAULT_DATA_ROOT}}}/{CERT_FILE}"'


NODE_CERT = Fact("node_cert", node_cert_cmd(), lambda t, rc: t if rc == 0 and "BEGIN CERTIFICATE" in t else None)


# --- node certificate ----------------------------------------------------------------

def cert_not_after(pem: str) -> dt.datetime:
    """The certificate's notAfter, in UTC (ValueError when ``pem`` is not a certificate)."""
    from cryptography import x509  # paramiko's own dependency; loaded only when doctor runs

    cert = x509.load_pem_x509_certificate(pem.encode())
    after = getattr(cert, "not_valid_after_utc", None)  # cryptography >= 42
    return after if after is not None else cert.not_valid_after.replace(tzinfo=dt.timezone.utc)


def cert_lifetime(info: dict[str, Any] | None) -> dt.timedelta | None:
    """The swarm's node certificate lifetime (CAConfig.NodeCertExpiry in a manager's /info)."""
    spec = (((info or {}).get("Swarm") or {}).get("Cluster") or {}).get("Spec") or {}
    ns = (spec.get("CAConfig") or {}).get("NodeCertExpiry")
    return dt.timedelta(microseconds=ns // 1000) if ns else None


def cert_check(host: str, pem: str, *, now: dt.datetime, lifetime: dt.timedelta | None = None) -> Check:
    """Days left on a node's swarm certificate: fail when expired, warn under CERT_WARN_DAYS
    (the swarm renews a node's certificate itself, well before that: one this close to its end
    is not being renewed)."""
    try:
        end = cert_not_after(pem)
    except ValueError as exc:
        return Check(host, "node cert", "warn", f"unreadable certificate: {exc}")
    days = (end - now).total_seconds() / 86400
    life = f"; the swarm issues {lifetime.days}-day certificates" if lifetime else ""
    if days <= 0:
        return Check(host, "node cert", "fail",
                     f"expired {end:%Y-%m-%d %H:%M} UTC: the node cannot reach the managers; "
                     "leave the swarm there and join it again (swarm.init)")
    if days < CERT_WARN_DAYS:
        return Check(host, "node cert", "warn",
                     f"{days:.0f} days left (expires {end:%Y-%m-%d}){life}; it should have been renewed by now: "
                     "can this node reach a manager on 2377? (`docker swarm ca --rotate` renews every node's)")
    return Check(host, "node cert", "ok", f"{days:.0f} days left (expires {end:%Y-%m-%d}){life}")


# --- managers and quorum -------------------------------------------------------------

def _role(node: dict[str, Any]) -> str:
    return (node.get("Spec") or {}).get("Role", "")


def _hostname(node: dict[str, Any]) -> str:
    return (node.get("Description") or {}).get("Hostname", "") or node.get("ID", "")[:12]


def quorum_check(nodes: list[dict[str, Any]]) -> Check:
    """Raft quorum from the node list: N managers need floor(N/2)+1 reachable ones; say how many
    more may be lost, warn on an even count or an unreachable manager, fail when it is lost."""
    managers = [n for n in nodes if _role(n) == "manager"]
    total = len(managers)
    away = sorted(_hostname(n) for n in managers
                  if (n.get("ManagerStatus") or {}).get("Reachability") != "reachable")
    reachable = total - len(away)
    need = total // 2 + 1
    counts = f"{reachable} of {total} managers reachable, quorum {need}"
    if reachable < need:
        return Check(CLUSTER, "quorum", "fail",
                     f"lost: {counts} (unreachable: {', '.join(away)}): nothing can be deployed, scaled "
                     "or joined; bring managers back, or `docker swarm init --force-new-cluster` on a good one")
    detail = f"{counts}: may lose {reachable - need} more"
    warnings = []
    if away:
        warnings.append(f"unreachable: {', '.join(away)}")
    if total % 2 == 0:
        warnings.append(f"an even count adds no fault tolerance (use {total - 1} or {total + 1})")
    if warnings:
        return Check(CLUSTER, "quorum", "warn", f"{detail}; {'; '.join(warnings)}")
    if total == 1:
        detail += " (one manager: its loss stops the cluster's management; 3 tolerate the loss of 1)"
    return Check(CLUSTER, "quorum", "ok", detail)


def no_leader_check(refusal: Refused, info: dict[str, Any] | None) -> Check:
    """A manager that answers but cannot list nodes because the swarm has no leader."""
    known = len(((info or {}).get("Swarm") or {}).get("RemoteManagers") or [])
    of = f" ({known} managers known to this one, quorum {known // 2 + 1})" if known else ""
    return Check(CLUSTER, "quorum", "fail",
                 f"lost: {refusal.message}{of}: nothing can be deployed, scaled or joined; bring managers "
                 "back, or `docker swarm init --force-new-cluster` on a good one")


# --- nodes ---------------------------------------------------------------------------

def node_checks(nodes: list[dict[str, Any]], hosts: set[str]) -> list[Check]:
    """Nodes whose state is not ready (down, disconnected, unknown) fail; drained or paused
    ones draw a warning. Named by their address where hosts.env lists it, else by hostname."""
    out = []
    for n in nodes:
        status = n.get("Status") or {}
        addr, name = status.get("Addr", ""), _hostname(n)
        host = addr if addr in hosts else name
        role = _role(n) or "node"
        state = status.get("State", "unknown")
        if state != "ready":
            why = f": {status['Message']}" if status.get("Message") else ""
            out.append(Check(host, "node", "fail",
                             f"{name} ({role}) is {state}{why}; its tasks go elsewhere until its engine is back "
                             "(or `docker node rm` it)"))
        avail = (n.get("Spec") or {}).get("Availability", "active")
        if avail != "active":
            out.append(Check(host, "node", "warn", f"{name} ({role}) availability {avail}: no new tasks there"))
    return out


# --- services ------------------------------------------------------------------------

_JOBS = ("ReplicatedJob", "GlobalJob")
_UPDATING = ("updating", "rollback_started")


def _state(task: dict[str, Any]) -> str:
    return (task.get("Status") or {}).get("State", "")


def _current(task: dict[str, Any]) -> bool:
    """A task the service still counts on (desired running, or ready: waiting out a restart
    delay), not a replaced one kept as history (desired shutdown)."""
    return task.get("DesiredState") not in ("shutdown", "remove", "orphaned", "complete")


def task_errors(tasks: list[dict[str, Any]], hostnames: dict[str, str]) -> str:
    """Why a service's tasks are not running: its current tasks' states (and errors), then the
    newest error of any of its tasks (rejected or failed ones are replaced, and keep it)."""
    current = [t for t in tasks if _current(t) and _state(t) != "running"]
    groups = Counter((_state(t), (t.get("Status") or {}).get("Err", "")) for t in current)
    parts = [f"{count} {state}{': ' + err if err else ''}" for (state, err), count in sorted(groups.items())]
    errs = sorted((t for t in tasks if (t.get("Status") or {}).get("Err")),
                  key=lambda t: (t.get("Status") or {}).get("Timestamp", ""))
    if errs:
        last = errs[-1]
        err = last["Status"]["Err"]
        if not any(err == e for _, e in groups):
            node = hostnames.get(last.get("NodeID", ""), "")
            parts.append(f"last error ({_state(last)}{' on ' + node if node else ''}): {err}")
    return "; ".join(parts) if parts else "no task errors recorded"


def service_checks(services: list[dict[str, Any]], tasks: list[dict[str, Any]],
                   nodes: list[dict[str, Any]]) -> list[Check]:
    """One failing check per service with fewer tasks running than desired (a warning while it
    is updating), with its tasks' errors, or with a slot swarm stopped restarting (givenup);
    one ok check when every service has converged.
    Jobs (which complete) are left out."""
    from . import givenup
    from .nodecmd import parse_nodes
    from .stackcmd import services_by_name

    hostnames = {n.get("ID", ""): _hostname(n) for n in nodes}
    gave = givenup.given_up(services_by_name(services), givenup.parse_tasks(tasks), parse_nodes(nodes))
    by_service: dict[str, list[dict[str, Any]]] = {}
    for t in tasks:
        by_service.setdefault(t.get("ServiceID", ""), []).append(t)
    out, converged = [], 0
    watched = [s for s in services if not any(k in ((s.get("Spec") or {}).get("Mode") or {}) for k in _JOBS)]
    for s in sorted(watched, key=lambda s: (s.get("Spec") or {}).get("Name", "")):
        name = (s.get("Spec") or {}).get("Name", s.get("ID", ""))
        own = by_service.get(s.get("ID", ""), [])
        status = s.get("ServiceStatus")
        if status:
            running, desired = status.get("RunningTasks", 0), status.get("DesiredTasks", 0)
        else:  # an engine before API 1.41 leaves ServiceStatus out: count the current tasks
            current = [t for t in own if _current(t)]
            running, desired = sum(1 for t in current if _state(t) == "running"), len(current)
        if name in gave:  # the counts may still say converged: a global service stops counting that node
            out.append(Check(CLUSTER, "service", "fail",
                             f"{name}: {running}/{desired} running, and swarm stopped restarting it "
                             f"({'; '.join(gave[name])}; restart_policy max_attempts used up): "
                             f"stack.deploy restarts it (or docker service update --force {name})"))
            continue
        if running >= desired:
            converged += 1
            continue
        updating = (s.get("UpdateStatus") or {}).get("State") in _UPDATING
        out.append(Check(CLUSTER, "service", "warn" if updating else "fail",
                         f"{name}: {running}/{desired} running{' (updating)' if updating else ''}; "
                         f"{task_errors(own, hostnames)}"))
    if not out:
        out.append(Check(CLUSTER, "services", "ok", "no services" if not converged else
                         f"{converged} service{'' if converged == 1 else 's'}, all converged"))
    return out


# --- the whole cluster ---------------------------------------------------------------

def cluster_checks(found: dict[str, dict[str, Any]], managers: list[str], *, now: dt.datetime) -> list[Check]:
    """Every cluster check from doctor's probe of each host (``found``: host -> facts, with
    MANAGER_FACTS on the hosts in ``managers``, in hosts.env order). Empty outside a swarm."""
    from .swarmcmd import parse_swarm

    swarm = {h: parse_swarm(f.get("docker_info")) for h, f in found.items()}
    if not any(s.active for s in swarm.values()):
        return []
    checks: list[Check] = []
    answered = next((h for h in managers if isinstance(found.get(h, {}).get(NODES.name), list)), None)
    if answered is None:
        refusals = {h: found[h][NODES.name] for h in managers
                    if isinstance(found.get(h, {}).get(NODES.name), Refused)}
        no_leader = next((h for h, r in refusals.items() if "leader" in r.message.lower()), None)
        if no_leader:
            checks.append(no_leader_check(refusals[no_leader], found[no_leader].get("docker_info")))
        else:
            why = "; ".join(f"{h}: {r.message}" for h, r in refusals.items()) or "none answered"
            checks.append(Check(CLUSTER, "quorum", "fail",
                                f"no manager listed the nodes ({why}); MANAGERS: {', '.join(managers) or '(none)'}"))
    else:
        f = found[answered]
        nodes = f[NODES.name]
        checks.append(quorum_check(nodes))
        checks += node_checks(nodes, set(found))
        services, tasks = f.get(SERVICES.name), f.get(TASKS.name)
        if isinstance(services, list) and isinstance(tasks, list):
            checks += service_checks(services, tasks, nodes)
    lifetime = next((cert_lifetime(f.get("docker_info")) for h, f in found.items()
                     if swarm[h].is_manager and cert_lifetime(f.get("docker_info"))), None)
    for h, f in found.items():
        if f.get(NODE_CERT.name):
            checks.append(cert_check(h, f[NODE_CERT.name], now=now, lifetime=lifetime))
        elif swarm[h].active:
            checks.append(Check(h, "node cert", "warn", f"in a swarm but no certificate found at "
                                                        f"<data root>/{CERT_FILE}"))
    return checks
