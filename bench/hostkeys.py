#!/usr/bin/env python3
"""What the host key check costs per connect: N connects to one lab host with the check (the
pool as it is) and without it (the same pool with a guard that accepts any key, as before),
interleaved A/B; plus the check alone (read the files, judge the key) on the lab's known_hosts
and on a 1000-entry hashed one, as a user's ~/.ssh/known_hosts may be.

Usage: SWARMBOOK_LAB_INSTANCE=k python3 bench/hostkeys.py [--runs 40]
Needs the lab up (`inv lab.up`); prints medians (wall and this process's CPU) in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from swarmbook import hostkeys, knownhosts, session  # noqa: E402
from swarmbook.config import HostSpec  # noqa: E402
from swarmbook.lab import layout  # noqa: E402


class Unchecked(hostkeys.Guard):
    """Any key goes (fabric's AutoAddPolicy without the add): the pool before host key checks."""

    def transport(self, sock, **kwargs):
        from paramiko import Transport

        return Transport(sock, **kwargs)

    def missing_host_key(self, client, hostname, key):
        return None

    def __init__(self, known, user, host, port):  # reads no file either
        self.known = known


def _connect(spec, known, key, guard) -> tuple[float, float]:
    session.Guard = guard
    pool = session.Pool()
    t0, c0 = time.perf_counter(), time.process_time()
    conn = pool.connect(spec, known_hosts=known, key=key, timeout=10)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    conn.close()
    return wall * 1000, cpu * 1000


def _check_alone(known, name, keytype, blob, runs: int) -> float:
    """What a connect spends on the check: the guard reads the files, then judges the key."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        guard = hostkeys.Guard(known, "root", name, 22)
        known.verify("root@x:22", name, keytype, blob, guard.entries)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    state = layout.state_dir()
    known = hostkeys.KnownHosts(state / "known_hosts")
    h = layout.hosts(1)[0]
    spec, key = HostSpec(h.addr, "root", 22), str(state / "id_ed25519")
    timings: dict[str, list[tuple[float, float]]] = {"checked": [], "unchecked": []}
    real = hostkeys.Guard
    _connect(spec, known, key, real)  # warm up (imports, ARP)
    for _ in range(args.runs):
        timings["checked"].append(_connect(spec, known, key, real))
        timings["unchecked"].append(_connect(spec, known, key, Unchecked))
    session.Guard = real
    for name, rows in timings.items():
        print(f"connect {name:9s}: wall median {statistics.median(r[0] for r in rows):6.2f} ms, "
              f"CPU median {statistics.median(r[1] for r in rows):5.2f} ms ({args.runs} runs)")
    pub = (state / "hostkeys" / h.hostname / "ssh_host_ed25519_key.pub").read_text().split()
    blob = base64.b64decode(pub[1])
    print(f"check alone (median), lab known_hosts ({len(known.entries())} entries): "
          f"{_check_alone(known, h.addr, pub[0], blob, 200):.3f} ms")
    with tempfile.TemporaryDirectory() as d:
        big = Path(d) / "known_hosts"
        big.write_text("".join(knownhosts.entry_line(f"10.{i // 256}.{i % 256}.1", pub[0], blob, hashed=True)
                               for i in range(1000)))
        many = hostkeys.KnownHosts(big, (known.record_to,))
        print(f"check alone (median), + 1000 hashed entries: {_check_alone(many, h.addr, pub[0], blob, 50):.3f} ms")


if __name__ == "__main__":
    main()
