"""Node maintenance: drain a node before work on it, activate it afterwards.

Assumes an active swarm whose managers hosts.env lists (commands run on the first that answers).
HOST is a hosts.env entry, a node's address, hostname or ID. Drain waits until the node's
swarm tasks run elsewhere and every service runs all its tasks again; containers started
outside swarm (GitLab, Kong, MySQL) do not move, and the run names them. Refused (exit 2,
nothing changed): a manager already down, a drain that would leave managers below quorum once
the node goes down, or the last active node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import membership, nodecmd, nodeops
else:
    membership = lazy("swarmbook.membership")
    nodecmd = lazy("swarmbook.nodecmd")
    nodeops = lazy("swarmbook.nodeops")

HELP = {
    "host": "the node: its hosts.env entry, address, hostname or node ID",
    "timeout": "seconds to wait for tasks to move and services to converge (default 300)",
}


def _validate(settings, host=None, timeout=300):
    if not host:
        refuse("which node? (e.g. inv node.drain 10.0.0.12)")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="managers", validate=_validate, positional=["host"], help=HELP)
def drain(run: Run, specs: list[HostSpec], host=None, timeout=300):
    """Drain a node: its swarm tasks move elsewhere; wait until every service runs all its tasks again."""
    spec, nodes = nodeops.control(run, specs)
    target, why = membership.find(host, nodes)
    if target is None:
        refuse(why)
    if target.availability != "drain":
        refusal = membership.drain_refusal(nodes, target)
        if refusal:
            refuse(f"not draining {host}: {refusal}")

    def body(h: Host) -> None:
        nodeops.drain(run, h, host, target, int(timeout), f"node {target.label} was {target.availability}")

    run.one(spec, body)
    nodeops.standalone(run, target)


@cluster_task(group="managers", validate=_validate, positional=["host"], help=HELP)
def activate(run: Run, specs: list[HostSpec], host=None, timeout=300):
    """Activate a drained node again: new and global tasks may run there; wait until every service converges."""
    spec, nodes = nodeops.control(run, specs)
    target, why = membership.find(host, nodes)
    if target is None:
        refuse(why)

    def body(h: Host) -> None:
        if target.availability == "active":
            run.emit(host, "activate", "ok", "already active")
        elif not nodeops.act(run, h, host, "activate", nodecmd.availability_cmd(target.id, "active"),
                             f"node {target.label} was {target.availability}"):
            return
        if not run.check:
            took = nodeops.wait_converged(h, target, int(timeout))
            run.emit(host, "services converged", "ok", f"{target.label} ready; every service converged "
                                                       f"after {took:.1f}s")

    run.one(spec, body)


ns = Collection("node", drain, activate)
