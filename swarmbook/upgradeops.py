"""docker.upgrade across the swarm: read every node's engine packages, then take the nodes of
the plan (swarmbook.upgrade) one at a time: quorum checked again, drain, packages, restart, wait
until ready on the new version (reachable, for a manager), activate. Stops at the first failure;
the node stays drained (marked) while the others serve, and a rerun goes on from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from . import dockercmd as D
from . import facts as F
from . import membership, nodeops
from . import nodecmd as N
from . import upgrade as U
from .errors import StepFailed, SwarmbookError
from .report import CHANGED, FAILED, OK

if TYPE_CHECKING:
    from .config import HostSpec
    from .engine import Host, Run


def ssh_specs(run: Run, nodes: list[N.Node]) -> dict[str, HostSpec]:
    """How to reach each node over SSH (its hosts.env entry where listed), by node ID."""
    return {n.id: nodeops.ssh_spec(run, n) for n in nodes}


def probe(run: Run, specs: dict[str, HostSpec]) -> dict[str, U.HostFacts]:
    """Each node's installed engine packages and what its apt sources offer (in parallel; a
    host that does not answer is missing from the answer, and the engine reports it)."""
    by_spec = {spec: node_id for node_id, spec in specs.items()}
    got: dict[str, U.HostFacts] = {}

    def body(h: Host) -> None:
        f = h.probe(F.installed_versions(list(U.PACKAGES)), F.apt_versions(list(U.PACKAGES)))
        got[by_spec[h.spec]] = U.HostFacts(f["installed_versions"], f["apt_versions"])

    run.each(list(by_spec), body)
    return got


def show(run: Run, plan: U.Plan) -> None:
    """Nodes on target (ok); in check mode also what would happen to each of the others."""
    for s in plan.done:
        run.emit(s.name, "engine", OK, f"docker.io {s.current}, engine {s.node.engine or '?'}: on target")
    if run.check:
        for s in plan.steps:
            what = f"install {' '.join(s.packages)}" if s.packages else "restart docker"
            run.emit(s.name, "upgrade engine", CHANGED, f"would drain {s.node.label}, {what}, wait until it is "
                                                        f"ready on {s.target}, activate")


def roll(run: Run, managers: list[HostSpec], plan: U.Plan, specs: dict[str, HostSpec], timeout: float) -> None:
    """Upgrade the plan's nodes one at a time; stop at the first that fails, saying where."""
    if run.check:
        return
    for i, step in enumerate(plan.steps):
        spec = specs[step.node.id]
        if not one(run, [m for m in managers if m != spec], step, spec, timeout):
            left = [s.name for s in plan.steps[i + 1:]]
            run.reporter.note(f"docker.upgrade stopped at {step.name}; the other nodes serve; {len(plan.done) + i} "
                              f"node(s) on target, not started: {', '.join(left) or 'none'}. Fix the cause and rerun "
                              f"docker.upgrade: it goes on from {step.name} (drained ones carry the label {U.MARK})",
                              level="warning")
            return


def one(run: Run, managers: list[HostSpec], step: U.Step, spec: HostSpec, timeout: float) -> bool:
    """One node through drain, packages, restart, ready, activate (reported under its name).
    True when it went through; a failure is reported and stops here."""
    clock = run.clock
    start = clock()
    took: dict[str, float] = {}
    desired: dict[str, int] = {}  # each service's desired task count before the drain

    def drain(h: Host, nodes: list[N.Node]) -> bool:
        target = next((n for n in nodes if n.id == step.node.id), None)
        if target is None:
            raise StepFailed(f"node {step.node.label} is no longer in the swarm")
        marked = target.labelled(U.MARK)
        refusal = "" if marked else membership.drain_refusal(nodes, target)
        if refusal:
            raise StepFailed(f"stopped before {step.name}: {refusal}")
        if target.is_manager:
            managers_now = [n for n in nodes if n.is_manager]
            votes = sum(1 for n in managers_now if n.reachable and n.id != target.id)
            run.emit(step.name, "quorum", OK, f"{votes} of {len(managers_now)} managers stay reachable while "
                                              f"{target.label} restarts (a majority is "
                                              f"{membership.majority(len(managers_now))})")
        desired.update(_desired(h))
        if marked:
            run.emit(step.name, "drain", OK, "drained by an earlier docker.upgrade run")
        elif target.availability == "drain":
            run.emit(step.name, "drain", OK, "drained before docker.upgrade: it stays drained afterwards")
        elif not nodeops.act(run, h, step.name, "drain",
                             N.availability_cmd(target.id, "drain", label_add=f"{U.MARK}=drained"),
                             f"for the engine upgrade (label {U.MARK})"):
            return False
        nodeops.moved_line(run, step.name, target, *nodeops.wait_moved(h, target, timeout))
        return True

    def packages(h: Host) -> bool:
        if step.packages:
            h.change(f"install {' '.join(step.packages)}", D.upgrade_cmd(step.packages, downgrade=step.downgrade),
                     timeout=1800, reason=f"docker.io {step.current} -> {step.target}")
        running = h.probe(F.SERVER_VERSION)["server_version"]
        if running and D.version_matches(step.target, running):
            h.ok("engine restarted", f"engine {running} (the package restarted it)")
        else:
            h.change("restart docker", D.restart_engine_cmd(),
                     reason=f"engine {running or 'not running'}, wanted {step.target}")
        return True

    def back(h: Host) -> bool:
        seen: dict = {}

        def ready() -> bool:
            listed = h.probe(N.NODE_LIST)["node_list"] or []  # (none while the managers elect a leader)
            seen["node"] = n = next((x for x in listed if x.id == step.node.id), seen.get("node"))
            return (n is not None and n.up and D.version_matches(step.target, n.engine)
                    and (n.reachable or not n.is_manager))

        t = clock()
        try:
            h.wait(f"{step.node.label} ready on {step.target}", ready, timeout=timeout, interval=1)
        except StepFailed:
            n = seen.get("node")
            now = f"{n.state}, engine {n.engine}{', ' + n.reachability if n.is_manager else ''}" if n else "gone"
            raise StepFailed(f"after {timeout:.0f}s {step.node.label} is {now}; wanted ready on {step.target}") from None
        took["ready"], t = clock() - t, clock()
        target = seen["node"]
        if target.labelled(U.MARK):
            if not nodeops.act(run, h, step.name, "activate", N.availability_cmd(target.id, "active", label_rm=U.MARK),
                               "engine upgraded"):
                return False
            nodeops.wait_converged(h, target, timeout)
            # a global service counts the node's task as desired only once swarm has placed it
            h.wait(f"the services to want their tasks on {target.label} again",
                   lambda: all(_desired(h).get(k, 0) >= v for k, v in desired.items())
                   and not N.unconverged(h.probe(N.SERVICE_STATUS)["service_status"]), timeout=timeout, interval=1)
        took["activate"] = clock() - t
        return True

    try:  # a manager that stays up while this node restarts: it drains, waits and activates
        cspec, nodes = nodeops.control(run, managers)
    except SwarmbookError as exc:
        run.emit(step.name, "upgrade", FAILED, f"stopped before {step.name}: {exc}")
        return False
    t = clock()
    if not _on(run, cspec, step, lambda h: drain(h, nodes)):
        return False
    took["drain"], t = clock() - t, clock()
    nodeops.standalone(run, step.node)
    done: list[bool] = []
    run.one(spec, lambda h: done.append(packages(h)))
    if not done:
        return False
    took["packages"] = clock() - t
    # the same manager: another one may not answer while the managers elect a new leader
    if not _on(run, cspec, step, back):
        return False
    run.emit(step.name, "upgraded", OK, f"docker.io {step.current} -> {step.target} in {clock() - start:.1f}s ("
                                        + ", ".join(f"{k} {v:.1f}s" for k, v in took.items()) + ")")
    return True


def _desired(h: Host) -> dict[str, int]:
    services = h.probe(N.SERVICE_STATUS)["service_status"] or {}
    return {name: s["tasks"][1] for name, s in services.items() if s["tasks"]}


def _on(run: Run, cspec: HostSpec, step: U.Step, body: Callable[[Host], bool]) -> bool:
    """``body(control)`` on the control manager; a failure is reported under the node's name.
    True when the body went through."""
    done: list[bool] = []

    def wrapped(h: Host) -> None:
        try:
            done.append(body(h))
        except StepFailed as exc:
            run.emit(step.name, "upgrade", FAILED, str(exc))

    run.one(cspec, wrapped)
    return done == [True]
