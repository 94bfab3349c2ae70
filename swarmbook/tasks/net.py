"""Swarm networks: the shared overlay, the ingress network, moving services between networks.

Assumes an active swarm (swarm.init). Every subnet is checked before anything is created:
CIDR syntax, host bits, size, and overlap with ingress, other networks and every node's own
addresses and routes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import netcheck, netcmd, validate
else:
    netcheck = lazy("swarmbook.netcheck")
    netcmd = lazy("swarmbook.netcmd")
    validate = lazy("swarmbook.validate")


def _survey(run: Run, specs: list[HostSpec]) -> tuple[Host | None, list[dict], dict[str, list[str]]]:
    """Routes of every node (parallel) and the swarm networks seen by the first manager."""
    routes: dict[str, list[str]] = {}
    lock = threading.Lock()

    def probe(h: Host) -> None:
        r = h.probe(netcheck.ROUTES)["routes"]
        with lock:
            routes[h.name] = r

    hosts = {h.name: h for h in run.each(specs, probe)}
    leader = hosts.get(specs[0].host)
    if leader is None:
        return None, [], routes
    nets = leader.probe(netcheck.NETWORKS)["networks"]
    if nets is None:
        run.one(leader.spec, lambda h: h.needs("networks", "docker does not answer (run docker.install first)"))
        return None, [], routes
    return leader, nets, routes


def _checked(run: Run, subnet: str, nets, routes, *, skip: str, what: str):
    net, warnings = netcheck.normalize(subnet, what)
    for w in warnings:
        run.reporter.note(w, level="warning")
    clash = netcheck.overlaps(net, netcheck.taken_by(nets, routes, skip=skip))
    if clash:
        refuse(f"{what} {net} overlaps {', '.join(clash)}; choose another subnet")
    return net


def _validate_subnet(settings, name=None, subnet=None, **_):
    if name is not None:
        validate.swarm_name(name, "--name")
    netcheck.normalize(settings.get("NETWORK_SUBNET", subnet))


@cluster_task(group="nodes", validate=_validate_subnet, help={
    "name": "network name (default NETWORK_NAME, i.e. default-network)",
    "subnet": "subnet (default NETWORK_SUBNET)",
    "encrypted": "encrypt traffic between nodes (--opt encrypted, the runbook's default)",
})
def create(run: Run, specs: list[HostSpec], name=None, subnet=None, encrypted=True):
    """Create the attachable overlay network (default-network) after checking its subnet."""
    name = run.settings.get("NETWORK_NAME", name)
    subnet = run.settings.get("NETWORK_SUBNET", subnet)
    leader, nets, routes = _survey(run, specs)
    if leader is None:
        return
    existing = next((n for n in nets if n["name"] == name), None)
    net = _checked(run, subnet, nets, routes, skip=name, what=f"subnet of {name}")
    if existing:
        if str(net) in existing["subnets"] and existing["attachable"] and existing["encrypted"] == encrypted:
            leader.ok(f"network {name}", f"{net}, attachable{', encrypted' if encrypted else ''}")
            return
        run.one(leader.spec, lambda h: h.fail(
            f"network {name}", f"exists with {existing['subnets']} attachable={existing['attachable']} "
            f"encrypted={existing['encrypted']}; move services with net.migrate to a new network"))
        return
    run.one(leader.spec, lambda h: h.change(f"network {name}", netcmd.create_cmd(name, str(net), encrypted=encrypted),
                                            reason=str(net)))


def _validate_ingress(settings, subnet=None, yes=False, force=False):
    if not subnet:
        refuse("net.recreate-ingress needs --subnet (e.g. 192.168.0.0/16)")
    netcheck.normalize(subnet, "ingress subnet")
    if not yes:
        refuse("net.recreate-ingress removes and recreates the ingress network (the routing mesh); "
               "published ports stop answering meanwhile: rerun with --yes")


@cluster_task(group="nodes", name="recreate-ingress", validate=_validate_ingress, help={
    "subnet": "new ingress subnet, e.g. 192.168.0.0/16",
    "yes": "confirm: this destroys and recreates the ingress network",
    "force": "when services publish through ingress: unpublish their ports, recreate, republish them",
})
def recreate_ingress(run: Run, specs: list[HostSpec], subnet=None, yes=False, force=False):
    """Recreate the ingress network on another subnet (destructive: needs --yes)."""
    leader, nets, routes = _survey(run, specs)
    if leader is None:
        return
    ingress = next((n for n in nets if n["ingress"]), None)
    net = _checked(run, subnet, nets, routes, skip=ingress["name"] if ingress else "", what="ingress subnet")
    if ingress and str(net) in ingress["subnets"]:
        leader.ok("ingress network", str(net))
        return

    def body(h: Host) -> None:
        users = h.probe(netcheck.INGRESS_USERS)["ingress users"]
        if users and not force:
            h.fail("ingress network", f"services publish through ingress: {', '.join(sorted(users))}; "
                                      "remove them, or rerun with --force to unpublish and republish their ports")
        name = ingress["name"] if ingress else "ingress"
        unpublished = {}
        try:
            for svc, ports in sorted(users.items()):  # docker refuses to remove ingress while they use it
                h.change(f"unpublish {svc}", netcmd.unpublish_cmd(svc, ports), timeout=900,
                         reason=", ".join(f"{p['published']}:{p['target']}/{p['protocol']}" for p in ports))
                unpublished[svc] = ports
            h.change("ingress network", netcmd.recreate_ingress_cmd(name, str(net), exists=bool(ingress)),
                     reason=f"{ingress['subnets'] if ingress else 'none'} -> {net}")
        finally:  # ports come back even when the recreation failed
            for svc, ports in unpublished.items():
                h.change(f"republish {svc}", netcmd.republish_cmd(svc, ports), timeout=900)
        if not h.check:
            got = h.run(netcmd.subnet_cmd(name)).stdout.strip()
            if got != str(net):
                h.fail("verify ingress", f"ingress subnet is {got!r}, expected {net}")

    run.one(leader.spec, body)


def _validate_migrate(settings, service=None, to=None, from_=None):
    for what, value in (("SERVICE", service), ("--to", to), ("--from", from_)):
        if not value:
            refuse(f"net.migrate needs {what}")
    validate.swarm_name(service, "SERVICE")
    validate.swarm_name(to, "--to")
    validate.swarm_name(from_, "--from")
    if to == from_:
        refuse("net.migrate: --to and --from name the same network")


@cluster_task(group="managers", validate=_validate_migrate, positional=["service"], help={
    "service": "service to move (e.g. demo_demo)",
    "to": "network to add (must exist, e.g. a bigger overlay)",
    "from": "network to remove once the service has converged on the new one",
})
def migrate(run: Run, specs: list[HostSpec], service=None, to=None, from_=None):
    """Move a service to another network without downtime: add, wait until converged, remove."""

    def body(h: Host) -> None:
        res = h.try_run(netcmd.service_networks_cmd(service))
        if res.rc != 0:
            h.fail("net.migrate", f"no service {service!r}")
        attached = set(res.stdout.split())
        ids = {}
        for net in (to, from_):
            r = h.try_run(netcmd.network_id_cmd(net))
            ids[net] = r.stdout.strip() if r.rc == 0 else ""
        if not ids[to]:
            h.fail("net.migrate", f"network {to!r} does not exist (create it with net.create --name {to})")
        if ids[to] not in attached:
            h.change(f"add {to} to {service}", netcmd.attach_cmd(service, to), timeout=900)
        else:
            h.ok(f"{service} on {to}")
        if ids[from_] and ids[from_] in attached:
            h.change(f"remove {from_} from {service}", netcmd.detach_cmd(service, from_), timeout=900)
        else:
            h.ok(f"{service} off {from_}")

    for spec in specs[:1]:
        run.one(spec, body)


ns = Collection("net", create, recreate_ingress, migrate)
