#!/usr/bin/env python3
"""swarmbook day-2 benchmark on the local 28.5 lab (issue 14 item 8): node.drain / node.activate
wall time and docker.upgrade per node (drain, packages, ready, activate), each with the load
balancer's and each node's probe counts. Target: docker.upgrade takes no more per node than the
engine package install plus 30 s, and 0 requests fail through the LB.
Prints a table and writes bench/results/day2.{json,md}.

Usage: SWARMBOOK_LAB_INSTANCE=k python3 bench/day2.py [--runs 3]
Needs root and the 28.5 lab (brought up, and converged with bootstrap-all, when it is not).
The upgrade drill (tests/lab/drills.py) puts every host on trixie's 26.1 first, makes all three
hosts managers, rolls them to 28.5 and gives the lab its own roles back. ~4 minutes a run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import measure, spread_table, write_named  # noqa: E402
from tests.lab import drills  # noqa: E402
from tests.lab.probe import Probe  # noqa: E402
from tests.lab.sb import roles_file  # noqa: E402


def inv(*args: str, env: dict) -> dict:
    res = measure(["inv", *args, "--json"], env=env)
    if res["rc"] != 0:
        raise SystemExit(f"inv {' '.join(args)} failed (rc {res['rc']}):\n{res['stdout'][-2000:]}{res['stderr'][-2000:]}")
    return res


def probed(info, url: str, *args: str, env: dict) -> tuple[dict, Probe]:
    with Probe({"lb": url, **{h.hostname: f"http://{h.addr}:9501/" for h in info.hosts}}) as p:
        res = inv(*args, env=env)
    return res, p


def longest_gap(p: Probe) -> float:
    return max(max(c.gaps, default=0) for n, c in p.counts.items() if n != "lb")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    from swarmbook import lab
    from swarmbook.lab import lb

    info = lab.up(hosts=3)
    env = {**os.environ, "SWARMBOOK_ENV": str(info.hosts_env), "SSH_KNOWN_HOSTS": str(info.known_hosts)}
    if not drills.serving_everywhere(info):
        inv("bootstrap-all", env=env)
    if not drills.offers_two_engines(info):
        raise SystemExit("the lab's hosts offer one engine: run it on the 28.5 lab (SWARMBOOK_LAB_ENGINE=28.5)")
    url = lb.up(info.state_dir, info.hosts, 9501)
    drills.settled(info)
    rows: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    target = info.hosts[-1]
    for _ in range(args.runs):
        r, p = probed(info, url, "node.drain", target.addr, env=env)
        add("node.drain wall s", r["wall"])
        add("drain: LB failed", p.counts["lb"].failed)
        add("drain: LB requests", p.counts["lb"].ok + p.counts["lb"].failed)
        add(f"drain: {target.hostname} gap s", longest_gap(p))
        r, p = probed(info, url, "node.activate", target.addr, env=env)
        add("node.activate wall s", r["wall"])
        add("activate: LB failed", p.counts["lb"].failed)
        add("activate: LB requests", p.counts["lb"].ok + p.counts["lb"].failed)

        t0 = time.monotonic()
        drills.older_engine(info)
        add("setup: all hosts to 26.1 s", time.monotonic() - t0)
        with tempfile.TemporaryDirectory() as d:
            three = roles_file(info, Path(d), managers=range(3), workers=[])
            inv("swarm.init", env={**env, "SWARMBOOK_ENV": three})
            t0 = time.monotonic()
            out, p = drills.upgrade_through_lb(info, url, three)
            add("docker.upgrade wall s (3 nodes)", time.monotonic() - t0)
            if out.rc != 0:
                raise SystemExit(f"docker.upgrade failed:\n{out.stdout[-3000:]}{out.stderr[-2000:]}")
            for host, reason in drills.per_node(out).items():
                s = drills.seconds(reason)
                print(f"  {host}: {reason}")
                for k, v in s.items():
                    add(f"upgrade per node: {k} s", v)
                add("upgrade per node: beyond packages s", s["total"] - s.get("packages", 0))
            add("upgrade: LB failed", p.counts["lb"].failed)
            add("upgrade: LB requests", p.counts["lb"].ok + p.counts["lb"].failed)
            add("upgrade: longest node gap s", longest_gap(p))
            again = inv("docker.upgrade", env={**env, "SWARMBOOK_ENV": three})
            add("docker.upgrade rerun wall s", again["wall"])
        inv("swarm.init", env=env)  # the lab's own roles again
        drills.settled(info)
    lb.down()
    beyond = rows.get("upgrade per node: beyond packages s", [])
    verdict = (f"target (per node no more than the package install + 30 s): "
               f"{'met' if beyond and max(beyond) <= 30 else 'NOT met'} (worst {max(beyond, default=0):.1f} s beyond)")
    write_named("day2", rows, spread_table(rows) + "\n\n" + verdict, f"day-2 bench, {args.runs} run(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
