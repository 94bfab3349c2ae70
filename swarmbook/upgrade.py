"""Pure planning of a rolling engine upgrade (docker.upgrade): the nodes a manager reports plus
what each host's dpkg has installed and its apt sources offer -> the nodes to upgrade, in order,
with the pinned packages each gets, or the refusals (no I/O here).

Rules (moby/moby#33869 and Docker's swarm admin guide: managers first, one node at a time):
- a node is on target when dpkg has the target docker.io (and docker-cli, where the sources
  offer it) installed and its engine, as the managers report it, runs that version; such a node
  is left alone (a second run changes nothing);
- the target is ``version`` (a prefix such as 28.5, matched as docker.install matches
  DOCKER_VERSION: the newest offered version that begins with it) or, without one, the newest
  version each host's sources offer;
- order: a node an earlier run drained (its mark, :data:`MARK`) first, so a rerun goes on where
  one stopped; then managers, the leader last (one leader change at most); then workers;
- refused before anything changes: a manager (or any node) already down that no earlier run
  drained; a manager whose restart would leave fewer than a majority reachable, or the last
  active node (membership.drain_refusal, as node.drain); a host whose sources do not offer the
  version, or whose engine is not Debian's docker.io; an older version without ``downgrade``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import dockercmd as D
from .membership import drain_refusal
from .nodecmd import Node

MARK = "swarmbook.upgrade"  # node label: drained by docker.upgrade, activated again once on target
PACKAGES = ("docker.io", D.DEBIAN_CLI)


@dataclass(frozen=True)
class HostFacts:
    installed: dict[str, str]                  # package -> version dpkg has installed
    offered: dict[str, list[tuple[str, str]]]  # package -> [(version, suite)], apt-cache madison


@dataclass(frozen=True)
class Step:
    name: str            # how the run reports the node (its hosts.env entry)
    node: Node
    packages: list[str]  # apt arguments, pinned (docker.io=28.5.2+dfsg4-1); [] when installed already
    current: str         # docker.io version installed now
    target: str          # docker.io version the node gets
    resume: bool = False  # drained by an earlier docker.upgrade run (it carries MARK)

    @property
    def downgrade(self) -> bool:
        return D.compare_versions(self.target, self.current) < 0


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)   # nodes to upgrade, in order
    done: list[Step] = field(default_factory=list)    # nodes on target already
    problems: list[str] = field(default_factory=list)  # refusals: nothing may change


def target_packages(offered: dict[str, list[tuple[str, str]]], version: str = "") -> list[str]:
    """Pinned apt arguments for the engine: ``version`` as docker.install reads DOCKER_VERSION
    (dockercmd.engine_packages), else each package's newest offered version. ValueError says
    what the sources offer instead."""
    if not offered.get("docker.io"):
        raise ValueError("the package sources offer no docker.io (apt-get update on the host?)")
    if version:
        return D.engine_packages(offered, version)
    return [f"{name}={offered[name][0][0]}" for name in PACKAGES if offered.get(name)]


def _pinned(packages: list[str]) -> dict[str, str]:
    return dict(p.split("=", 1) for p in packages)


def plan(nodes: list[Node], facts: dict[str, HostFacts], names: dict[str, str], version: str = "", *,
         downgrade: bool = False) -> Plan:
    """``facts`` and ``names`` (how to report it) per node ID; see the module's rules."""
    p = Plan()
    for n in nodes:
        name, f = names.get(n.id, n.label), facts.get(n.id)
        if f is None:
            p.problems.append(f"{name}: could not read its engine packages (see the lines above)")
            continue
        current = f.installed.get("docker.io", "")
        if not current:
            others = ", ".join(f"{k} {v}" for k, v in sorted(f.installed.items())) or "no docker.io package"
            p.problems.append(f"{name}: its engine is not Debian's docker.io ({others}); docker.upgrade upgrades "
                              "docker.io from the host's apt sources")
            continue
        try:
            wanted = _pinned(target_packages(f.offered, version))
        except ValueError as exc:
            p.problems.append(f"{name}: {exc}")
            continue
        target = wanted["docker.io"]
        older = D.compare_versions(target, current) < 0
        if older and not downgrade:
            p.problems.append(f"{name}: docker.io {target} is older than the installed {current} "
                              "(--downgrade to allow it)")
            continue
        missing = [f"{k}={v}" for k, v in wanted.items() if f.installed.get(k) != v]
        running = not n.engine or D.version_matches(target, n.engine)
        step = Step(name, n, missing, current, target, resume=n.labelled(MARK))
        (p.steps if missing or not running or step.resume else p.done).append(step)
    if not p.steps:
        return p
    resuming = {s.node.id for s in p.steps if s.resume}
    down = [n for n in nodes if n.id not in resuming and (not n.up or n.is_manager and not n.reachable)]
    for n in down:
        p.problems.append(f"{'manager' if n.is_manager else 'node'} {n.label} is already down "
                          f"({n.reachability if n.is_manager and n.up else n.state}): bring it back before upgrading")
    if down:
        return p
    # a node an earlier run left drained (or down) is upgraded first: the others are judged as
    # they will be once it is back, ready, reachable and active
    back = [replace(n, state="ready", availability="active", reachability="reachable" if n.is_manager else "")
            if n.id in resuming else n for n in nodes]
    for s in p.steps:
        refusal = drain_refusal(nodes if s.resume else back, s.node)
        if refusal:
            p.problems.append(f"not upgrading {s.name}: {refusal}")
    p.steps.sort(key=lambda s: (not s.resume, not s.node.is_manager, s.node.leader, s.node.hostname, s.name))
    return p
