"""Pure command builders for swarm networks: create the overlay, recreate ingress, move a
service between networks, take its ports off ingress and put them back.

The checks made before any of these run (subnet syntax, overlaps) are in netcheck.
"""

from __future__ import annotations

from typing import Any

from .shell import join, quote

# Replace one task at a time, so the others keep serving while each moves (a later
# stack deploy puts the stack file's update_config back).
ONE_AT_A_TIME = ["--update-parallelism", "1", "--update-delay", "2s"]


def create_cmd(name: str, subnet: str, *, encrypted: bool) -> str:
    """The attachable overlay network (the runbook's default-network)."""
    argv = ["docker", "network", "create", "--driver", "overlay", "--subnet", subnet, "--attachable"]
    argv += ["--opt", "encrypted"] if encrypted else []
    return join([*argv, name])


def recreate_ingress_cmd(name: str, subnet: str, *, exists: bool) -> str:
    """Remove the ingress network ``name`` (when it ``exists``), wait up to 60 s until it is
    gone, and create it again on ``subnet``."""
    steps = []
    if exists:
        steps.append(f"echo y | docker network rm {quote(name)} >/dev/null")
        steps.append(f"for i in $(seq 60); do docker network inspect {quote(name)} >/dev/null 2>&1 || break; sleep 1; done")
    steps.append(join(["docker", "network", "create", "--driver", "overlay", "--ingress", "--subnet", subnet, name]))
    return " && ".join(steps)


def subnet_cmd(name: str) -> str:
    """The subnet(s) of network ``name``, concatenated."""
    return f"docker network inspect --format '{{{{range .IPAM.Config}}}}{{{{.Subnet}}}}{{{{end}}}}' {quote(name)}"


def network_id_cmd(name: str) -> str:
    return f"docker network inspect --format '{{{{.Id}}}}' {quote(name)}"


def service_networks_cmd(service: str) -> str:
    """The network IDs ``service`` is attached to, space separated."""
    return ("docker service inspect --format "
            "'{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}' " + quote(service))


def attach_cmd(service: str, network: str) -> str:
    """Add ``network`` to ``service``, one task at a time; returns once the service converged."""
    return join(["docker", "service", "update", "--detach=false", "--quiet", *ONE_AT_A_TIME,
                 "--network-add", network, service])


def detach_cmd(service: str, network: str) -> str:
    return join(["docker", "service", "update", "--detach=false", "--quiet", *ONE_AT_A_TIME,
                 "--network-rm", network, service])


def unpublish_argv(service: str, ports: list[dict[str, Any]]) -> list[str]:
    argv = ["docker", "service", "update", "--detach=false", "--quiet"]
    for target, proto in sorted({(p["target"], p["protocol"]) for p in ports}):
        argv += ["--publish-rm", f"{target}/{proto}"]
    return [*argv, service]


def republish_argv(service: str, ports: list[dict[str, Any]]) -> list[str]:
    argv = ["docker", "service", "update", "--detach=false", "--quiet"]
    for p in ports:
        spec = f"target={p['target']},protocol={p['protocol']},mode={p['mode']}"
        argv += ["--publish-add", (f"published={p['published']}," if p["published"] else "") + spec]
    return [*argv, service]


def unpublish_cmd(service: str, ports: list[dict[str, Any]]) -> str:
    """Take ``ports`` (what netcheck.parse_ingress_users found) off ``service``."""
    return join(unpublish_argv(service, ports))


def republish_cmd(service: str, ports: list[dict[str, Any]]) -> str:
    """Publish ``ports`` on ``service`` again, as they were."""
    return join(republish_argv(service, ports))
