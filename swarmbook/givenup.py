"""Tasks swarm has stopped restarting, read from a stack's task history (pure).

A service's ``restart_policy.max_attempts`` (the runbook's demo: 5) counts failures per slot
(per node for a global service) with no end: after the last one swarm leaves that slot empty
for good, and ``docker service ls`` may even look converged (a global service's desired count
drops with it). Seen in the lab's disaster drill: a node that rejoined got its task before its
overlay networking was up ("cannot create a swarm scoped network when swarm is not active"),
five rejections later it served nothing until someone forced a new task.

Each slot's newest task tells: ``DesiredState`` shutdown and state failed/rejected, with no
newer task, means swarm gave up (while attempts remain, swarm makes the replacement in the same
store update that shuts the old one down). ``docker service update --force`` starts a new task
history for every slot, which is what stack.deploy does then.
"""

from __future__ import annotations

from typing import Any

from .facts import Fact, engine_fact, engine_filters
from .nodecmd import DONE_STATES, Node
from .shell import join
from .stackcmd import NAMESPACE_LABEL

GAVE_UP = frozenset({"failed", "rejected"})


def parse_tasks(api: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": t.get("ID", ""), "service": t.get("ServiceID", ""), "node": t.get("NodeID", ""),
             "slot": t.get("Slot") or 0, "desired": t.get("DesiredState", ""),
             "state": (t.get("Status") or {}).get("State", ""), "err": (t.get("Status") or {}).get("Err", ""),
             "created": _when(t.get("CreatedAt", ""))} for t in api]


def _when(stamp: str) -> tuple[str, str]:
    """RFC 3339 with up to 9 fraction digits (trailing zeros dropped) as a sortable pair."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return head, frac.ljust(9, "0")


def stack_tasks_fact(stack: str) -> Fact:
    """Every task of ``stack`` that swarm still keeps (its task history included)."""
    path = f"/tasks?filters={engine_filters(label=[f'{NAMESPACE_LABEL}={stack}'])}"
    return engine_fact("stack_tasks", path, parse_tasks, absent=[])


def _newest(tasks: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for t in tasks:
        k = t[key]
        if k not in out or t["created"] > out[k]["created"]:
            out[k] = t
    return out


def given_up(services: dict[str, dict[str, Any]], tasks: list[dict[str, Any]],
             nodes: list[Node] | None) -> dict[str, list[str]]:
    """Service name -> where swarm stopped restarting its task ("h3: rejected (why)"). A global
    service counts a node that is ready and active; a replicated one its slots up to replicas."""
    by_node = {n.id: n for n in nodes or []}
    out: dict[str, list[str]] = {}
    for name, svc in sorted(services.items()):
        mode = (svc.get("spec") or {}).get("Mode") or {}
        mine = [t for t in tasks if t["service"] == svc["id"]]
        if "Global" in mode:
            node_ok = {i for i, n in by_node.items() if n.up and n.availability == "active"}
            slots = {k: t for k, t in _newest(mine, "node").items() if k in node_ok}
            where = {k: by_node[k].label for k in slots}
        elif "Replicated" in mode:
            want = int((mode["Replicated"] or {}).get("Replicas", 1))
            slots = {k: t for k, t in _newest(mine, "slot").items() if 0 < k <= want}
            where = {k: f"slot {k}{' on ' + by_node[t['node']].label if t['node'] in by_node else ''}"
                     for k, t in slots.items()}
        else:  # jobs run to completion: a finished task is the goal
            continue
        lost = [f"{where[k]}: {t['state']} ({t['err'] or 'no error given'})" for k, t in sorted(slots.items())
                if t["desired"] == "shutdown" and t["state"] in GAVE_UP]
        if lost:
            out[name] = lost
    return out


def in_progress(services: dict[str, dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Service name -> its tasks on their way (meant to run, not running yet: pending, starting,
    or waiting out the restart delay). A stack is settled only when none is."""
    ids = {s["id"]: n for n, s in services.items()}
    out: dict[str, int] = {}
    for t in tasks:
        name = ids.get(t["service"])
        if name and t["desired"] in ("running", "ready") and t["state"] not in DONE_STATES | {"running"}:
            out[name] = out.get(name, 0) + 1
    return out


def force_cmd(service: str) -> str:
    """A new task for every slot (rolling, as update_config says). --detach: the task waits
    itself, with its timeout; measured on 28.5, `--detach=false` never returned once the update
    was rolled back (still waiting 26 minutes later)."""
    return join(["docker", "service", "update", "--force", "--detach", "--quiet", service])
