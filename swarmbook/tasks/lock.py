"""The cluster lock that keeps two operators from changing one cluster at once.

Every changing run takes it on the first manager that answers; these tasks show or clear it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import lock
else:
    lock = lazy("swarmbook.lock")


def _first(run: Run, specs: list[HostSpec], body) -> None:
    for spec in specs:
        if run.one(spec, body) is not None:
            return


@cluster_task(group="managers", locks=False, help={})
def status(run: Run, specs: list[HostSpec]):
    """Show who holds the cluster lock, if anyone."""
    def body(h: Host) -> None:
        owner = h.probe(lock.owner_fact())["lock owner"]
        h.ok("cluster lock", owner if owner is not None else "free")
    _first(run, specs, body)


@cluster_task(group="managers", locks=False, help={})
def release(run: Run, specs: list[HostSpec]):
    """Clear the cluster lock left by a run that was killed (check with lock.status first)."""
    def body(h: Host) -> None:
        owner = h.probe(lock.owner_fact())["lock owner"]
        if owner is None:
            h.ok("cluster lock", "already free")
            return
        h.change("release cluster lock", lock.release_cmd(owner), reason=f"was {owner}")
    _first(run, specs, body)


ns = Collection("lock", status, release)
