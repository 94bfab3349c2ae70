"""Day-2 node steps run from a manager (``control``) and reported under the node's own name:
role changes, drain/activate with the waits that make them mean something, leave and removal.
Shared by swarm.init (membership) and node.drain / node.activate (maintenance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import membership
from . import nodecmd as N
from .config import HostSpec
from .errors import StepFailed
from .facts import docker_info
from .report import CHANGED, FAILED, OK
from .swarmcmd import parse_swarm

if TYPE_CHECKING:
    from .engine import Host, Run


def act(run: Run, control: Host, name: str, step: str, command: str, reason: str) -> bool:
    """Run ``command`` on ``control`` (unless check mode) and report ``step`` as changed under
    ``name``; a failure is reported under ``name`` too. True when it went through."""
    try:
        if not run.check:
            control.run(command, step=step)
    except StepFailed as exc:
        run.emit(name, step, FAILED, str(exc))
        return False
    control.changed_any = True
    run.emit(name, step, CHANGED, reason)
    return True


def nodes(control: Host) -> list[N.Node]:
    got = control.probe(N.NODE_LIST)["node_list"]
    if got is None:
        raise StepFailed(f"{control.name} does not list the swarm's nodes (not a manager?)")
    return got


def control(run: Run, specs: list[HostSpec]) -> tuple[HostSpec, list[N.Node]]:
    """The first manager of ``specs`` that lists the swarm's nodes, and that list; refused (one
    line, nothing changed) when none does."""
    from .taskdef import refuse

    got: list = []

    def body(h: Host) -> None:
        got.append(nodes(h))

    for spec in specs:
        run.one(spec, body)
        if got:
            return spec, got[0]
    refuse("no manager answered with the swarm's nodes (see the lines above)")
    raise AssertionError  # refuse raised


def node(control: Host, node_id: str) -> N.Node | None:
    return next((n for n in nodes(control) if n.id == node_id), None)


def wait_reachable(control: Host, ids: list[str], timeout: float = 90) -> None:
    """Until every node of ``ids`` is a reachable manager (a promotion has taken effect)."""
    if ids and not control.check:
        control.wait("promoted managers to be reachable",
                     lambda: all(n.reachable for n in nodes(control) if n.id in ids), timeout=timeout, interval=1)


def wait_moved(control: Host, target: N.Node, timeout: float) -> tuple[int, float, dict[str, str]]:
    """Until no task of ``target`` runs any more and every service runs all its tasks again
    (elsewhere), except services no other node can take (:func:`nodecmd.pinned`). Returns
    (tasks that were on the node, seconds waited, those pinned services and why). A task stops
    within its service's stop grace period (10 s by default), so that is about the least this takes."""
    clock = control.run_.clock
    start = clock()
    first: list[int] = []
    seen: dict = {}

    def moved() -> bool:
        f = control.probe(N.node_tasks(target.id), N.SERVICE_STATUS, N.UNPLACED)
        # a node that is down never reports its tasks stopped: there, only the services count
        tasks = (f[N.node_tasks(target.id).name] or []) if target.up else []
        first.append(len(tasks))
        status = f["service_status"]
        seen["pinned"] = stuck = N.pinned(status, f["unplaced"])
        seen["tasks"] = tasks
        seen["services"] = N.unconverged(None if status is None else
                                         {n: s for n, s in status.items() if n not in stuck})
        return not tasks and not seen["services"]

    try:
        control.wait(f"tasks to leave {target.label}", moved, timeout=timeout, interval=1)
    except StepFailed:
        raise StepFailed(f"after {timeout:.0f}s {len(seen.get('tasks') or [])} task(s) still on {target.label}; "
                         f"services not converged: {', '.join(seen.get('services') or []) or 'none'}") from None
    return first[0], clock() - start, seen["pinned"]


def moved_line(run: Run, name: str, target: N.Node, count: int, took: float, stuck: dict[str, str]) -> None:
    """Report the drain's wait under ``name``: tasks moved, and (a warning) what could not move."""
    run.emit(name, "tasks moved", OK, f"{count} task(s) were on {target.label}; every service "
                                      f"{'that another node can run ' if stuck else ''}converged after {took:.1f}s")
    if stuck:
        run.reporter.note(f"no other node can run {', '.join(f'{s} ({why})' for s, why in stuck.items())}: "
                          f"down until {target.label} is active again", host=name, level="warning")


def wait_converged(control: Host, target: N.Node, timeout: float) -> float:
    """Until ``target`` is ready and every service runs all its tasks (global ones come back)."""
    clock = control.run_.clock
    start = clock()
    seen: dict = {}

    def ready() -> bool:
        f = control.probe(N.NODE_LIST, N.SERVICE_STATUS)
        n = next((x for x in f["node_list"] or [] if x.id == target.id), None)
        seen["state"], seen["services"] = (n.state if n else "gone"), N.unconverged(f["service_status"])
        return n is not None and n.up and not seen["services"]

    try:
        control.wait(f"{target.label} and every service to converge", ready, timeout=timeout, interval=1)
    except StepFailed:
        raise StepFailed(f"after {timeout:.0f}s {target.label} is {seen.get('state')}; services not converged: "
                         f"{', '.join(seen.get('services') or []) or 'none'}") from None
    return clock() - start


def ssh_spec(run: Run, target: N.Node) -> HostSpec:
    """How to reach ``target`` over SSH: its hosts.env entry (user, port) when listed, else its address."""
    for s in run.settings.group("all"):
        if s.host in target.addrs or s.host.lower() == target.hostname.lower():
            return s
    return run.settings.spec_for(target.where)


def standalone(run: Run, target: N.Node) -> None:
    """Say which containers on ``target`` are not swarm tasks: drain does not move them."""
    spec = ssh_spec(run, target)

    def body(h: Host) -> None:
        names = h.probe(N.STANDALONE)["standalone"]
        if names is None:
            h.note("could not list its containers (docker does not answer)", level="warning")
        elif names:
            h.note(f"standalone containers stay on {target.label} (not swarm tasks, drain does not move them; "
                   f"stop them yourself before maintenance): {', '.join(names)}", level="warning")
        else:
            h.note(f"no standalone containers on {target.label}")

    run.one(spec, body)


def leave(run: Run, target: N.Node) -> bool:
    """Tell ``target`` itself to leave the swarm (over SSH). True when it is out (or would be)."""
    done: list[bool] = []

    def body(h: Host) -> None:
        st = parse_swarm(h.probe(docker_info())["docker_info"])
        if st.active and st.node_id != target.id:
            h.fail("leave the swarm", f"{h.name} is node {st.node_id[:12]}, not {target.id[:12]}: left alone")
        if not st.active:
            run.emit(h.name, "leave the swarm", OK, f"swarm state {st.state}")
        else:
            h.change("leave the swarm", N.leave_cmd(), reason="not in hosts.env")
        done.append(True)

    run.one(ssh_spec(run, target), body)
    return bool(done)


def drain(run: Run, control: Host, name: str, target: N.Node, timeout: float, reason: str) -> bool:
    """Drain ``target`` (reported under ``name``) and wait until its tasks are gone and every
    service converged. False when the drain command failed (reported)."""
    if target.availability == "drain":
        run.emit(name, "drain", OK, "already drained")
    elif not act(run, control, name, "drain", N.availability_cmd(target.id, "drain"), reason):
        return False
    if not run.check:
        moved_line(run, name, target, *wait_moved(control, target, timeout))
    return True


def prune(run: Run, control: Host, plan: membership.Plan, timeout: float) -> None:
    """Drain, wait, leave and remove each unlisted node (demoted already), one at a time."""
    steps = {}
    for a in plan.of("drain", "leave", "remove"):
        steps.setdefault(a.node.id, []).append(a)
    for node_id, actions in steps.items():
        target = actions[0].node
        for a in actions:
            if a.kind == "drain":
                if not drain(run, control, a.name, target, timeout, a.reason):
                    return
            elif a.kind == "leave":
                if not leave(run, target):
                    return
                if not run.check:
                    control.wait(f"{target.label} to be down", lambda: _gone_or_down(control, node_id),
                                 timeout=60, interval=1)
            elif a.kind == "remove":
                if not act(run, control, a.name, "remove node", N.remove_cmd(node_id), f"{target.label}: {a.reason}"):
                    return


def _gone_or_down(control: Host, node_id: str) -> bool:
    n = node(control, node_id)
    return n is None or n.state == "down"
