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
        Fact("engine", "docker version --format '{{.Server.Version}}'", lambda t, rc: t.strip() if rc == 0 else ""),
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
             swarm_active: bool) -> list[Check]:
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
    closed = [f"{p}:{port}" for (p, port), state in f["reach"].items() if state == "closed"]
    if filtered:
        checks.append(Check(host, "swarm ports", "fail", f"filtered (timed out): {', '.join(filtered)}"))
    elif closed and swarm_active:
        checks.append(Check(host, "swarm ports", "warn", f"reachable but closed: {', '.join(closed)}"))
    else:
        checks.append(Check(host, "swarm ports", "ok",
                            f"tcp {'/'.join(map(str, SWARM_TCP_PORTS))} reachable on {len(f['reach']) // 2} peers"
                            " (udp 7946/4789 not testable without a listener)"))
    return checks

