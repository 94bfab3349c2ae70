"""Pure builders and parsers for swarm membership (init, join, node list).

Joining goes through the engine API on the local socket with the token in a JSON body on
stdin: ``docker swarm join --token`` would put the token in every process list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .facts import ENGINE_SOCKET, Fact, engine_get_cmd
from .shell import join, quote


@dataclass(frozen=True)
class SwarmState:
    state: str          # inactive | pending | active | error | locked | unknown (no docker)
    node_id: str
    node_addr: str
    is_manager: bool
    cluster_id: str
    error: str
    name: str = ""  # the engine's hostname

    @property
    def active(self) -> bool:
        return self.state == "active"


def parse_swarm(info: dict[str, Any] | None) -> SwarmState:
    """SwarmState from ``docker info`` JSON (None: docker did not answer)."""
    if info is None:
        return SwarmState("unknown", "", "", False, "", "docker does not answer")
    sw = info.get("Swarm") or {}
    return SwarmState(
        state=sw.get("LocalNodeState", "inactive") or "inactive",
        node_id=sw.get("NodeID", "") or "",
        node_addr=sw.get("NodeAddr", "") or "",
        is_manager=bool(sw.get("ControlAvailable")),
        cluster_id=((sw.get("Cluster") or {}).get("ID") or ""),
        error=sw.get("Error", "") or "",
        name=info.get("Name", "") or "",
    )


def init_cmd(advertise: str, *, default_addr_pool: str | None = None) -> str:
    argv = ["docker", "swarm", "init", "--advertise-addr", advertise]
    if default_addr_pool:
        argv += ["--default-addr-pool", default_addr_pool]
    return join(argv)


def _parse_tokens(text: str, rc: int) -> dict[str, str] | None:
    if rc != 0:
        return None
    try:
        tokens = json.loads(text).get("JoinTokens") or {}
    except (json.JSONDecodeError, AttributeError):
        return None
    if not (tokens.get("Manager") and tokens.get("Worker")):
        return None
    return {"manager": tokens["Manager"], "worker": tokens["Worker"]}


# Both join tokens from the engine API's /swarm, one call (secrets: the engine masks them from
# every line it prints; they never appear in argv).
TOKENS = Fact("tokens", engine_get_cmd("/swarm"), _parse_tokens)


def join_body(token: str, leader_addr: str, advertise: str) -> str:
    """JSON for POST /swarm/join (sent on stdin: the token never reaches argv)."""
    return json.dumps({"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": advertise,
                       "RemoteAddrs": [f"{leader_addr}:2377"], "JoinToken": token})


def join_cmd() -> str:
    """Join via the engine API: the body (with the token) arrives on stdin."""
    return join(["curl", "-sS", "--fail-with-body", "--max-time", "120", "--unix-socket", ENGINE_SOCKET,
                 "-H", "Content-Type: application/json", "-X", "POST", "--data-binary", "@-",
                 "http://localhost/swarm/join"])


NODES = Fact("nodes", "docker node ls --format '{{json .}}'",
             lambda t, rc: [json.loads(x) for x in t.splitlines() if x.strip()] if rc == 0 else None)


def promote_cmd(node_id: str) -> str:
    return join(["docker", "node", "promote", node_id])


def remove_node_cmd(node_id: str, *, demote: bool) -> str:
    """Remove a node entry (a manager's is demoted first, whatever that says)."""
    first = f"docker node demote {quote(node_id)} >/dev/null 2>&1; " if demote else ""
    return f"{first}docker node rm --force {quote(node_id)}"


def node_labels_cmd(node_id: str) -> str:
    """The node's labels as a JSON object (``null`` when it has none)."""
    return f"docker node inspect --format '{{{{json .Spec.Labels}}}}' {quote(node_id)}"


def label_add_cmd(node_id: str, labels: dict[str, str]) -> str:
    args = " ".join(f"--label-add {quote(f'{k}={v}')}" for k, v in labels.items())
    return f"docker node update {args} {quote(node_id)}"


# Every node's ID and address, one per line.
NODE_ADDRS_CMD = "docker node ls -q | xargs docker node inspect --format '{{.ID}} {{.Status.Addr}}'"


def node_ls_ids(nodes: list[dict[str, Any]] | None) -> set[str]:
    return {n.get("ID", "").rstrip("*").strip() for n in (nodes or [])}


def advertise_fact(target: str) -> Fact:
    """The source address this host uses to reach ``target`` (its advertise address)."""
    return Fact("src_addr", join(["ip", "-4", "route", "get", target]) + " | sed -n 's/.* src \\([0-9.]*\\).*/\\1/p'",
                lambda t, rc: t.strip().splitlines()[0] if rc == 0 and t.strip() else "")


SERVICES = Fact("services", "docker service ls --format '{{json .}}'",
                lambda t, rc: [json.loads(x) for x in t.splitlines() if x.strip()] if rc == 0 else None)


def print_status(nodes: list[dict[str, Any]], services: list[dict[str, Any]] | None, *,
                 json_lines: bool, out) -> None:
    """Nodes and services as two tables (or JSON lines)."""
    if json_lines:
        for n in nodes:
            out.write(json.dumps({"event": "node", **n}) + "\n")
        for s in services or []:
            out.write(json.dumps({"event": "service", **s}) + "\n")
        return
    out.write(f"{'HOSTNAME':<14} {'STATUS':<8} {'AVAILABILITY':<13} {'MANAGER':<12} {'ENGINE':<10} ID\n")
    for n in nodes:
        out.write(f"{n.get('Hostname', ''):<14} {n.get('Status', ''):<8} {n.get('Availability', ''):<13} "
                  f"{n.get('ManagerStatus', '') or 'worker':<12} {n.get('EngineVersion', ''):<10} "
                  f"{n.get('ID', '').rstrip('*').strip()}{' (here)' if n.get('Self') else ''}\n")
    out.write(f"\n{'SERVICE':<28} {'MODE':<12} {'REPLICAS':<9} {'IMAGE'}\n")
    for s in services or []:
        out.write(f"{s.get('Name', ''):<28} {s.get('Mode', ''):<12} {s.get('Replicas', ''):<9} {s.get('Image', '')}\n")
    if not services:
        out.write("(no services)\n")
    out.flush()
