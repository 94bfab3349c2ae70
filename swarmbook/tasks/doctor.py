"""Preflight and health check: every node before changing anything, and the swarm as its
managers see it (read-only; takes no lock). Assumes nothing: a node without Docker or outside
a swarm is reported as such."""

from __future__ import annotations

import datetime
import threading
import time
from typing import TYPE_CHECKING

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import doctorcmd, facts, report, swarmhealth
else:
    doctorcmd = lazy("swarmbook.doctorcmd")
    facts = lazy("swarmbook.facts")
    report = lazy("swarmbook.report")
    swarmhealth = lazy("swarmbook.swarmhealth")


@cluster_task(group="all", name="doctor", locks=False, help={})
def doctor(run: Run, specs: list[HostSpec]):
    """Check nodes and swarm: engines, clock, disk, IPVS, subnets, ports, quorum, nodes down, services, certs."""
    peers = [s.host for s in specs]
    managers = [s.host for s in run.settings.group("managers") if s.host in peers] or peers
    found: dict[str, tuple] = {}
    lock = threading.Lock()

    def probe(h: Host) -> None:
        sent = time.time()
        f = h.probe(*doctorcmd.probe_facts([p for p in peers if p != h.name]), facts.docker_info(),
                    swarmhealth.NODE_CERT, *(swarmhealth.MANAGER_FACTS if h.name in managers else ()))
        with lock:
            found[h.name] = (f, sent, time.time())

    run.each(specs, probe)
    found = {h: found[h] for h in peers if h in found}  # hosts.env order
    checks = doctorcmd.host_checks(found, managers=set(managers), subnet=run.settings["NETWORK_SUBNET"])
    cluster = swarmhealth.cluster_checks({h: f for h, (f, _, _) in found.items()}, managers,
                                         now=datetime.datetime.now(datetime.timezone.utc))
    planned = None if cluster else doctorcmd.planned_managers(len(managers))
    checks = doctorcmd.by_host(checks + (cluster or ([planned] if planned else [])), peers)
    if not run.reporter.json_lines:
        run.reporter.out.write(doctorcmd.table(checks))
    for c in checks:  # every check is a step of the recap; the table shows them, a failure prints too
        run.emit(c.host, f"doctor {c.name}", report.FAILED if c.level == "fail" else report.OK,
                 f"warning: {c.detail}" if c.level == "warn" else c.detail, shown=c.level == "fail")
        if c.level == "warn":
            run.reporter.note(f"{c.name}: {c.detail}", host=c.host, level="warning")
