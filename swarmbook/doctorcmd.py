"""Pure parts of the preflight check (inv doctor): one batched probe per node and the verdicts."""

from __future__ import annotations

from dataclasses import dataclass

from .facts import Fact
from .netcheck import ROUTES, normalize, overlaps
from .shell import quote

SWARM_TCP_PORTS = (2377, 7946)
MIN_FREE_MB = 2048


@dataclass(frozen=True)
class Check:
    host: str
    name: str
    level: str  # ok | warn | fail
    detail: str


def probe_facts(peers: list[str]) -> list[Fact]:
    """Engine version, clock, free disk, IPVS, routes and TCP reachability of every peer's swarm ports."""
    reach = "; ".join(
        f"timeout 3 bash -c {quote(f'</dev/tcp/{p}/{port}')} 2>/dev/null; echo {quote(p)} {port} $?"
        for p in peers for port in SWARM_TCP_PORTS)
    return [
        Fact("engine", "docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'",
             lambda t, rc: t.strip() if rc == 0 else ""),
        Fact("clock", "date +%s.%N", lambda t, rc: float(t.strip() or 0)),
        Fact("disk_mb", "df -Pm /var/lib/docker 2>/dev/null | awk 'NR==2{print $4}' || df -Pm / | awk 'NR==2{print $4}'",
             lambda t, rc: int(t.split()[0]) if t.split() else -1),
        Fact("ipvs", "test -d /proc/sys/net/ipv4/vs", lambda t, rc: rc == 0),
        ROUTES,
        Fact("reach", reach or "true", _parse_reach),
    ]


def _parse_reach(text: str, rc: int) -> dict[tuple[str, int], str]:
    """bash /dev/tcp exit codes: 0 open, 124 timed out (filtered), else refused (host answers)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            code = parts[2]
            out[(parts[0], int(parts[1]))] = "open" if code == "0" else "filtered" if code == "124" else "closed"
    return out


def verdicts(host: str, f: dict, *, sent: float, received: float, engines: set[str], subnet: str,
             swarm_active: bool, managers: set[str] | None = None) -> list[Check]:
    """One host's checks. ``managers``: the hosts that listen on 2377 (only managers do, so a
    worker's closed 2377 is no finding); None: every peer should."""
    checks = [Check(host, "ssh", "ok", "answers")]
    engine_level = "fail" if not f["engine"] else "warn" if len(engines) > 1 else "ok"
    checks.append(Check(host, "engine", engine_level, f["engine"] or "docker does not answer (docker.install)"))
    skew = f["clock"] - (sent + received) / 2 if f["clock"] else 0.0
    checks.append(Check(host, "clock", "ok" if abs(skew) < 1 else "warn" if abs(skew) < 10 else "fail",
                        f"{skew:+.2f}s from this machine"))
    free = f["disk_mb"]
    checks.append(Check(host, "disk", "ok" if free >= MIN_FREE_MB else "fail", f"{free} MB free"))
    checks.append(Check(host, "ipvs", "ok" if f["ipvs"] else "warn",
                        "present" if f["ipvs"] else "absent: no routing mesh / VIPs (publish mode=host, dnsrr)"))
    net, _ = normalize(subnet)
    clash = overlaps(net, {f"{host} routes": f["routes"]})
    checks.append(Check(host, "subnet", "fail" if clash else "ok",
                        f"{net} overlaps {clash[0]}" if clash else f"{net} clear of its routes"))
    filtered = [f"{p}:{port}" for (p, port), state in f["reach"].items() if state == "filtered"]
    closed = [f"{p}:{port}" for (p, port), state in f["reach"].items() if state == "closed"
              and not (port == 2377 and managers is not None and p not in managers)]
    if filtered:
        checks.append(Check(host, "swarm ports", "fail", f"filtered (timed out): {', '.join(filtered)}"))
    elif closed and swarm_active:
        checks.append(Check(host, "swarm ports", "warn", f"reachable but closed: {', '.join(closed)}"))
    else:
        checks.append(Check(host, "swarm ports", "ok",
                            f"tcp {'/'.join(map(str, SWARM_TCP_PORTS))} reachable on {len(f['reach']) // 2} peers"
                            " (udp 7946/4789 not testable without a listener)"))
    return checks


def host_checks(found: dict[str, tuple[dict, float, float]], *, managers: set[str], subnet: str) -> list[Check]:
    """Every node's verdicts and the engine skew across them, from doctor's probe of each host
    (``found``: host -> (facts, time sent, time received), in the order to report)."""
    from .swarmcmd import parse_swarm

    engines = {f["engine"] for f, _, _ in found.values() if f["engine"]}
    swarm_active = any(parse_swarm(f["docker_info"]).active for f, _, _ in found.values())
    checks = []
    for host, (f, sent, received) in found.items():
        checks += verdicts(host, f, sent=sent, received=received, engines=engines, subnet=subnet,
                           swarm_active=swarm_active, managers=managers)
    skew = engine_skew({host: f["engine"] for host, (f, _, _) in found.items() if f["engine"]}, managers)
    return checks + ([skew] if skew else [])


def _major(engine: str) -> int | None:
    head = engine.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def _api(engine: str) -> str:
    return engine.rsplit("(API ", 1)[1].rstrip(")") if "(API " in engine else "?"


def engine_skew(engines: dict[str, str], managers: set[str]) -> Check | None:
    """A cluster-wide warning when the nodes' engines are of different major versions.

    ``engines``: host -> "28.5.2 (API 1.51)" as the probe reads it. Swarm mixes versions only
    for the length of a rolling upgrade: the managers' raft and the scheduler speak the oldest
    manager's API, so newer service options are refused or dropped, and Docker supports at
    most one major version between managers and workers (managers first, one at a time).
    """
    majors = {h: _major(e) for h, e in engines.items() if _major(e) is not None}
    if len(set(majors.values())) < 2:
        return None
    listed = "; ".join(f"{h} {engines[h]}{' manager' if h in managers else ''}" for h in sorted(majors))
    mgr = [majors[h] for h in majors if h in managers]
    wrk = [majors[h] for h in majors if h not in managers]
    gap = ""
    if mgr and wrk and (max(wrk) > min(mgr) or max(mgr) - min(wrk) > 1):
        gap = (f"managers ({', '.join(sorted({engines[h] for h in majors if h in managers}))}) and workers "
               "are more than one major apart or a worker is newer than a manager; ")
    apis = sorted({_api(e) for e in engines.values()})
    return Check("(cluster)", "engine skew", "warn",
                 f"{listed}: {gap}API versions {', '.join(apis)}: services are scheduled with the oldest "
                 "manager's API, so newer options are refused or dropped; finish the upgrade, managers "
                 "first, one at a time")


def planned_managers(count: int) -> Check | None:
    """Before the swarm exists: warn when hosts.env plans an even number of managers (or none)."""
    if count == 0 or count % 2 == 0:
        return Check("(cluster)", "managers", "warn",
                     f"{count} managers in hosts.env: use an odd number (1, 3, 5) for a quorum")
    return None


def by_host(checks: list[Check], hosts: list[str]) -> list[Check]:
    """Each host's checks together, in ``hosts`` order, then the cluster's (order kept within)."""
    rank = {h: i for i, h in enumerate(hosts)}
    return sorted(checks, key=lambda c: rank.get(c.host, len(rank)))


def table(checks: list[Check]) -> str:
    """The text report: one row per check."""
    rows = [f"{'HOST':<16} {'CHECK':<12} {'RESULT':<6} DETAIL"]
    rows += [f"{c.host:<16} {c.name:<12} {c.level.upper():<6} {c.detail}" for c in checks]
    return "\n".join(rows) + "\n\n"
