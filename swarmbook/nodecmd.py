"""Pure builders and facts for day-2 node work: roles, availability, leaving, removal, and
what runs where (for drain/activate and prune).

Reads go to the engine API on the local socket (one curl each); changes use the docker CLI on
a manager. Every node ID reaches argv quoted, as one argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .facts import engine_fact, engine_filters
from .shell import join

# Task states after which a task no longer runs anywhere (docker/api/types/swarm/task.go).
DONE_STATES = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
# A swarm task's container carries this label; a container started with `docker run` does not.
TASK_LABEL = "com.docker.swarm.task.id"


@dataclass(frozen=True)
class Node:
    """One swarm node as a manager's ``GET /nodes`` reports it."""

    id: str
    hostname: str
    addr: str             # Status.Addr (0.0.0.0 on some engines for a manager)
    role: str             # manager | worker (Spec.Role: the wanted role)
    availability: str     # active | pause | drain
    state: str            # ready | down | unknown | disconnected
    reachability: str = ""  # managers: reachable | unreachable | unknown
    manager_addr: str = ""  # ManagerStatus.Addr without the port
    leader: bool = False
    engine: str = ""        # Description.Engine.EngineVersion: the engine the node runs now
    labels: tuple[tuple[str, str], ...] = ()  # Spec.Labels (sorted pairs: the dataclass stays hashable)

    @property
    def is_manager(self) -> bool:
        return self.role == "manager"

    @property
    def member(self) -> bool:
        """A raft member (it has a ManagerStatus): one vote of the quorum, reachable or not. A node
        can keep the manager role outside raft: the old managers after --force-new-cluster."""
        return self.is_manager and bool(self.reachability)

    @property
    def reachable(self) -> bool:
        """A manager that counts toward quorum right now."""
        return self.is_manager and self.reachability == "reachable"

    @property
    def up(self) -> bool:
        return self.state == "ready"

    @property
    def addrs(self) -> set[str]:
        return {a for a in (self.addr, self.manager_addr) if a and a != "0.0.0.0"}

    def labelled(self, key: str) -> bool:
        return any(k == key for k, _ in self.labels)

    @property
    def label(self) -> str:
        return self.hostname or self.id[:12]

    @property
    def where(self) -> str:
        """The node's address (its hostname when the engine reports none)."""
        return next((a for a in (self.addr, self.manager_addr) if a and a != "0.0.0.0"), self.label)


def _host_of(addr: str) -> str:
    """``10.0.0.1:2377`` -> ``10.0.0.1``; ``[fd00::1]:2377`` -> ``fd00::1``."""
    host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 or addr.startswith("[") else addr
    return host.strip("[]")


def parse_nodes(api: list[dict[str, Any]]) -> list[Node]:
    out = []
    for n in api:
        spec, status, ms = n.get("Spec") or {}, n.get("Status") or {}, n.get("ManagerStatus") or {}
        desc = n.get("Description") or {}
        out.append(Node(
            id=n.get("ID", ""), hostname=desc.get("Hostname", ""),
            addr=status.get("Addr", ""), role=spec.get("Role", ""), availability=spec.get("Availability", ""),
            state=status.get("State", ""), reachability=ms.get("Reachability", "") if ms else "",
            manager_addr=_host_of(ms.get("Addr", "")) if ms else "", leader=bool(ms.get("Leader")) if ms else False,
            engine=(desc.get("Engine") or {}).get("EngineVersion", ""),
            labels=tuple(sorted((spec.get("Labels") or {}).items()))))
    return out


# Every node of the swarm (None: this engine is not a manager, or does not answer).
NODE_LIST = engine_fact("node_list", "/nodes", parse_nodes)


def parse_services(api: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{service: {"tasks": (running, desired) or None, "updating": bool}} from ``/services?status=true``."""
    out = {}
    for s in api:
        st = s.get("ServiceStatus") or {}
        counts = (st.get("RunningTasks", 0), st.get("DesiredTasks", 0)) if st else None
        state = (s.get("UpdateStatus") or {}).get("State", "")
        out[(s.get("Spec") or {}).get("Name", s.get("ID", ""))] = {
            "tasks": counts, "updating": state in ("updating", "rollback_started"), "id": s.get("ID", "")}
    return out


# Every service's running and desired task counts (Docker 20.10+ / API 1.41 answers them).
SERVICE_STATUS = engine_fact("service_status", "/services?status=true", parse_services)


def unconverged(services: dict[str, dict[str, Any]] | None) -> list[str]:
    """Services that do not run all their tasks or are still rolling ("name 1/2"); [] when all do.
    A service scaled to 0 is converged here: it runs all (none) of its tasks."""
    if services is None:
        return ["(no service list: not a manager?)"]
    out = []
    for name, s in sorted(services.items()):
        if s["tasks"] is None:
            out.append(f"{name} ? (engine reports no task counts)")
        elif s["tasks"][0] != s["tasks"][1] or s["updating"]:
            out.append(f"{name} {s['tasks'][0]}/{s['tasks'][1]}{' updating' if s['updating'] else ''}")
    return out


NO_NODE = "no suitable node"  # the scheduler's Status.Err for a task that no node can take


def parse_unplaced(api: list[dict[str, Any]]) -> dict[str, str]:
    """Service ID -> the scheduler's reason, for tasks meant to run that no node can take
    ("no suitable node (scheduling constraints not satisfied on 3 nodes)": a placement
    constraint, a resource reservation, a host-mode port taken everywhere)."""
    out: dict[str, str] = {}
    for t in api:
        st = t.get("Status") or {}
        if st.get("State") == "pending" and (st.get("Err") or "").startswith(NO_NODE):
            out.setdefault(t.get("ServiceID", ""), st["Err"])
    return out


# The tasks swarm wants running but cannot place anywhere (a manager's ``/tasks``).
UNPLACED = engine_fact("unplaced", f"/tasks?filters={engine_filters(**{'desired-state': ['running']})}", parse_unplaced)


def pinned(services: dict[str, dict[str, Any]] | None, unplaced: dict[str, str] | None) -> dict[str, str]:
    """Services short of tasks only because no node can take them (e.g. Portainer, constrained to
    the labelled manager that is drained): name -> the scheduler's reason. They come back when
    the node does; a drain does not wait for them."""
    return {name: (unplaced or {})[s["id"]] for name, s in sorted((services or {}).items())
            if s.get("id") in (unplaced or {}) and s["tasks"] and s["tasks"][0] < s["tasks"][1]}


def parse_tasks(api: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Tasks not yet done (running, starting, shutting down...): [{"id", "service", "state"}]."""
    return [{"id": t.get("ID", ""), "service": t.get("ServiceID", ""), "state": (t.get("Status") or {}).get("State", "")}
            for t in api if (t.get("Status") or {}).get("State", "") not in DONE_STATES]


def node_tasks(node_id: str) -> Any:
    """The tasks on ``node_id`` that still run or are on their way (a manager's ``/tasks``)."""
    return engine_fact(f"tasks:{node_id[:12]}", f"/tasks?filters={engine_filters(node=[node_id])}", parse_tasks)


def parse_standalone(api: list[dict[str, Any]]) -> list[str]:
    """Names of running containers that are not swarm tasks (`docker run`: GitLab, Kong, MySQL)."""
    return sorted(((c.get("Names") or ["?"])[0].lstrip("/")) for c in api if TASK_LABEL not in (c.get("Labels") or {}))


# This host's running containers that swarm will not move (a GET on the host's own engine).
STANDALONE = engine_fact("standalone", "/containers/json", parse_standalone)


def demote_cmd(node_id: str) -> str:
    return join(["docker", "node", "demote", node_id])


def availability_cmd(node_id: str, availability: str, *, label_add: str = "", label_rm: str = "") -> str:
    """``drain`` (tasks move away, none are placed here) or ``active``; in the same update, a
    node label set (``key=value``) or removed (``key``), e.g. docker.upgrade's mark of the nodes
    it drained itself."""
    if availability not in ("active", "drain", "pause"):
        raise ValueError(f"availability {availability!r}")
    labels = (["--label-add", label_add] if label_add else []) + (["--label-rm", label_rm] if label_rm else [])
    return join(["docker", "node", "update", "--availability", availability, *labels, node_id])


def leave_cmd() -> str:
    """Leave the swarm, on the node itself. No --force: a manager refuses (demote it first)."""
    return join(["docker", "swarm", "leave"])


def remove_cmd(node_id: str) -> str:
    """Remove a node entry that is down (left). No --force: the engine refuses a live node."""
    return join(["docker", "node", "rm", node_id])
