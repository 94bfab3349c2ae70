"""Pure subnet checks done before any network is created: syntax, host bits, size, overlaps.

Inputs are what facts found: swarm networks on the leader, and every node's own addresses
and routes (``ip -4 -o addr`` / ``ip -4 route``).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from .errors import ConfigError
from .facts import SERVICE_SPECS_CMD, Fact, engine_fact

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
LARGE_PREFIX = 16  # larger than /16 (e.g. the runbook's /8) draws a warning


def normalize(text: str, what: str = "subnet") -> tuple[Net, list[str]]:
    """Parse a CIDR; host bits are cleared with a warning (10.0.0.1/8 -> 10.0.0.0/8)."""
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not a CIDR subnet such as 10.1.0.0/16") from None
    if "/" not in text:
        raise ConfigError(f"{what} {text!r} has no prefix length (write e.g. {text}/16)")
    warnings = []
    if str(net) != text.strip():
        warnings.append(f"{what} {text} has host bits set; using {net}")
    if net.version == 4 and net.prefixlen < LARGE_PREFIX:
        warnings.append(f"{what} {net} holds {net.num_addresses:,} addresses; with Docker 20.10 tasks on a /8 "
                        f"overlay stayed in state New. A /16 (65,534) is plenty for most clusters")
    return net, warnings


def overlaps(subnet: Net, taken: dict[str, list[str]]) -> list[str]:
    """Which of ``taken`` (label -> CIDRs) overlap ``subnet``, as 'label (cidr)' strings."""
    hits = []
    for label, cidrs in taken.items():
        for c in cidrs:
            try:
                other = ipaddress.ip_network(c, strict=False)
            except ValueError:
                continue
            if other.version == subnet.version and other.prefixlen > 0 and subnet.overlaps(other):
                hits.append(f"{label} ({other})")
    return hits


def parse_routes(text: str, rc: int = 0) -> list[str]:
    """CIDRs from ``ip -4 -o addr`` and ``ip -4 route`` output (default route skipped)."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if "inet" in words:  # ip -o addr: "2: eth0    inet 172.29.100.11/24 brd ..."
            out.append(words[words.index("inet") + 1])
        elif words[0] != "default" and "/" in words[0]:
            out.append(words[0])
    return out


ROUTES = Fact("routes", "ip -4 -o addr show; ip -4 route show", parse_routes)


def _networks(networks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine API's /networks as plain dicts."""
    nets = []
    for n in networks:
        cfg = (n.get("IPAM") or {}).get("Config") or []
        nets.append({"name": n.get("Name"), "id": n.get("Id", ""), "driver": n.get("Driver"),
                     "scope": n.get("Scope"), "ingress": bool(n.get("Ingress")),
                     "attachable": bool(n.get("Attachable")),
                     "encrypted": "encrypted" in (n.get("Options") or {}),
                     "subnets": [c.get("Subnet") for c in cfg if c.get("Subnet")]})
    return nets


# one engine API call (docker network ls + inspect were two CLI runs)
NETWORKS = engine_fact("networks", "/networks", _networks)


def taken_by(networks: list[dict[str, Any]], routes: dict[str, list[str]], *, skip: str = "") -> dict[str, list[str]]:
    """Everything a new subnet must not overlap: other docker networks and node routes."""
    taken: dict[str, list[str]] = {}
    for n in networks:
        if n["name"] != skip and n["subnets"]:
            taken[f"network {n['name']}"] = n["subnets"]
    for host, cidrs in routes.items():
        taken[f"{host} addresses/routes"] = cidrs
    return taken


# --- ingress users: services that publish through the routing mesh ---------------------

INGRESS_USERS = Fact("ingress users", SERVICE_SPECS_CMD, lambda text, rc: parse_ingress_users(text))


def parse_ingress_users(text: str) -> dict[str, list[dict[str, Any]]]:
    """service -> the ports ``--publish-rm TARGET/PROTO`` would take away, for every service
    with at least one ingress-mode port (removal is by target, so host-mode ports on the
    same target go too, and come back with them)."""
    users: dict[str, list[dict[str, Any]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        spec = json.loads(line)
        ports = [{"protocol": p.get("Protocol") or "tcp", "target": int(p["TargetPort"]),
                  "published": int(p.get("PublishedPort") or 0), "mode": p.get("PublishMode") or "ingress"}
                 for p in (spec.get("EndpointSpec") or {}).get("Ports") or []]
        hit = {(p["target"], p["protocol"]) for p in ports if p["mode"] == "ingress"}
        if hit:
            users[spec["Name"]] = [p for p in ports if (p["target"], p["protocol"]) in hit]
    return users
