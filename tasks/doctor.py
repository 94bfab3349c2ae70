"""Preflight: check every node before changing anything (read-only; takes no lock)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

D = lazy("swarmbook.doctorcmd")
F = lazy("swarmbook.facts")
report = lazy("swarmbook.report")
swarmcmd = lazy("swarmbook.swarmcmd")


@cluster_task(group="all", name="doctor", locks=False, help={})
def doctor(run: Run, specs: list[HostSpec]):
    """Check nodes: SSH, engine versions, clock skew, disk, IPVS, subnet overlaps, swarm ports, managers."""
    peers = [s.host for s in specs]
    found: dict[str, tuple] = {}
    lock = threading.Lock()

    def probe(h: Host) -> None:
        sent = time.time()
        f = h.probe(*D.probe_facts([p for p in peers if p != h.name]), F.docker_info())
        with lock:
            found[h.name] = (f, sent, time.time())

    run.each(specs, probe)
    engines = {f["engine"] for f, _, _ in found.values() if f["engine"]}
    swarm_active = any(swarmcmd.parse_swarm(f["docker_info"]).active for f, _, _ in found.values())
    checks = []
    for host, (f, sent, received) in found.items():
        checks += D.verdicts(host, f, sent=sent, received=received, engines=engines,
                             subnet=run.settings["NETWORK_SUBNET"], swarm_active=swarm_active)
    manager_hosts = {s.host for s in run.settings.group("managers")}
    skew = D.engine_skew({host: f["engine"] for host, (f, _, _) in found.items() if f["engine"]}, manager_hosts)
    if skew:
        checks.append(skew)
    managers = len(manager_hosts)
    if managers == 0 or managers % 2 == 0:
        checks.append(D.Check("(cluster)", "managers", "warn",
                              f"{managers} managers: use an odd number (1, 3, 5) for a quorum"))
    out = run.reporter.out
    if not run.reporter.json_lines:
        out.write(f"{'HOST':<16} {'CHECK':<12} {'RESULT':<6} DETAIL\n")
        for c in checks:
            out.write(f"{c.host:<16} {c.name:<12} {c.level.upper():<6} {c.detail}\n")
        out.write("\n")
    for c in checks:
        if c.level == "fail":
            run.emit(c.host, f"doctor {c.name}", report.FAILED, c.detail)
        elif c.level == "warn":
            run.reporter.note(f"{c.name}: {c.detail}", host=c.host, level="warning")
            if run.reporter.json_lines:
                run.emit(c.host, f"doctor {c.name}", report.OK, "warning: " + c.detail)
        elif run.reporter.json_lines:
            run.emit(c.host, f"doctor {c.name}", report.OK, c.detail)
