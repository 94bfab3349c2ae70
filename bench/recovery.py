#!/usr/bin/env python3
"""swarmbook backup and recovery benchmark on the local lab: size and time of each backup
(swarm state, MySQL, Portainer), how long the manager is out during swarm.backup, and the
disaster drill's recovery time, as tests/lab/test_58_swarm_restore.py runs it: the lab's hosts
all managers, every manager's engine stopped and its swarm state wiped, then from the
swarm.restore command (onto the manager the backup came from) through swarm.init (the others
join again) and stack.deploy (restarts what swarm gave up restarting) to every node serving the demo; plus the load balancer's counts during a rolling
update. Prints a table and writes bench/results/recovery.{json,md}. The lab goes back to its
own roles (h1 manager, the rest workers) at the end.

Usage: python3 bench/recovery.py [--runs 3]
Needs root; brings the lab up and converges the runbook on it (bootstrap-all) when it is not.
Takes ~3 minutes a run on a converged lab. Targets (issue 15): recovery under 120 s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "tests" / "lab"))
from bench.run import measure, spread_table, write_named  # noqa: E402
from probe import Probe, get  # noqa: E402  (tests/lab/probe.py: the lab tests' bounded probe loop)
from sb import all_managers_env, ssh  # noqa: E402


def serving(addrs: list[str]) -> bool:
    return all(get(f"http://{a}:9501/", timeout=3) for a in addrs)


def inv(*args: str, env: dict) -> dict:
    res = measure(["inv", *args, "--json"], env=env)
    if res["rc"] != 0:
        raise SystemExit(f"inv {' '.join(args)} failed (rc {res['rc']}):\n{res['stdout'][-2000:]}{res['stderr'][-2000:]}")
    return res


def backup_size(folder: Path, pattern: str) -> int:
    (f,) = sorted(folder.glob(pattern))[-1:]
    return f.stat().st_size


def out_for(stdout: str) -> float:
    m = re.search(r"out for ([0-9.]+)s", stdout)
    return float(m.group(1)) if m else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    from swarmbook import lab

    info = lab.up(hosts=3)
    env = {**os.environ, "SWARMBOOK_ENV": str(info.hosts_env), "SSH_KNOWN_HOSTS": str(info.known_hosts)}
    addrs = [h.addr for h in info.hosts]
    if not serving(addrs):
        inv("bootstrap-all", env=env)
    rows: dict[str, list[float]] = {k: [] for k in (
        "swarm.backup wall s", "manager out s", "swarm archive KiB", "mysql.backup wall s", "mysql dump KiB",
        "portainer.backup wall s", "portainer tar KiB", "recovery s", "swarm.restore wall s", "swarm.init rejoin wall s",
        "stack.deploy wall s",
        "LB failed requests", "LB requests", "longest node gap s")}
    inv("portainer.up", env=env)
    keys = tempfile.TemporaryDirectory()
    drill = {**env, "SWARMBOOK_ENV": all_managers_env(info, keys.name)}
    inv("swarm.init", env=drill)  # every host a manager: the drill loses them all
    try:
        run_all(args.runs, info, env, drill, addrs, rows)
    finally:
        inv("swarm.init", env=env)  # the lab's own roles again
        keys.cleanup()
    write_named("recovery", rows, spread_table(rows), f"recovery bench, {args.runs} runs")
    return 0


def run_all(runs: int, info, env: dict, drill: dict, addrs: list[str], rows: dict[str, list[float]]) -> None:
    """``runs`` rounds of backups, the drill and a rolling update, each measure into ``rows``."""
    from swarmbook.lab import lb

    for _ in range(runs):
        inv("mysql.up", env=env)  # MySQL (a standalone container) answers again after the last drill's engine restarts
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            r = inv("swarm.backup", "--to", d, env=drill)
            rows["swarm.backup wall s"].append(r["wall"])
            rows["manager out s"].append(out_for(r["stdout"]))
            rows["swarm archive KiB"].append(backup_size(folder, "swarm-*.tar.gz") / 1024)
            r = inv("mysql.backup", "--to", d, env=env)
            rows["mysql.backup wall s"].append(r["wall"])
            rows["mysql dump KiB"].append(backup_size(folder, "mysql-*.sql.gz") / 1024)
            r = inv("portainer.backup", "--to", d, env=env)
            rows["portainer.backup wall s"].append(r["wall"])
            rows["portainer tar KiB"].append(backup_size(folder, "portainer-*.tar") / 1024)
            # the drill: every manager's swarm state wiped, restored on one, the others rejoined
            (archive,) = folder.glob("swarm-*.tar.gz")
            with concurrent.futures.ThreadPoolExecutor(len(info.hosts)) as pool:
                list(pool.map(lambda h: ssh(info, h, "systemctl stop docker.socket docker.service && "
                                        "rm -rf /var/lib/docker/swarm && systemctl start docker.socket docker.service"),
                              info.hosts))
            t0 = time.monotonic()
            r = inv("swarm.restore", str(archive), "--yes", env=drill)
            rows["swarm.restore wall s"].append(r["wall"])
            rows["swarm.init rejoin wall s"].append(inv("swarm.init", env=drill)["wall"])
            # restarts a service swarm stopped restarting on a rejoined node (max_attempts used up)
            rows["stack.deploy wall s"].append(inv("stack.deploy", "demo", env=drill)["wall"])
            while not serving(addrs) and time.monotonic() - t0 < 600:
                time.sleep(0.5)
            rows["recovery s"].append(time.monotonic() - t0)
        # a rolling update through the load balancer
        url = lb.up(info.state_dir, info.hosts, 9501)
        with tempfile.NamedTemporaryFile("w", suffix=".env") as appenv:
            appenv.write(f"APP_NAME=bench-{time.time_ns()}\n")
            appenv.flush()
            with Probe({"lb": url, **{h.hostname: f"http://{h.addr}:9501/" for h in info.hosts}}) as p:
                inv("stack.deploy", "demo", "--app-env", appenv.name, env=env)
        inv("stack.deploy", "demo", env=env)
        rows["LB failed requests"].append(p.counts["lb"].failed)
        rows["LB requests"].append(p.counts["lb"].ok + p.counts["lb"].failed)
        rows["longest node gap s"].append(max(max(c.gaps, default=0) for n, c in p.counts.items() if n != "lb"))
    lb.down()


if __name__ == "__main__":
    sys.exit(main())
