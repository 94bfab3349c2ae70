"""Run swarmbook's real command lines (inv / fab) against the lab and read their JSON lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from swarmbook.engine import CONFLICT, CONFLICT_TRIES

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    rc: int
    stdout: str
    stderr: str
    events: list[dict] = field(default_factory=list)

    def steps(self, status: str | None = None, host: str | None = None) -> list[dict]:
        return [e for e in self.events if e.get("event") == "step"
                and (status is None or e["status"] == status) and (host is None or e["host"] == host)]

    @property
    def changed(self) -> int:
        return len(self.steps("changed"))

    @property
    def failed(self) -> list[dict]:
        return self.steps("failed")

    def recap(self) -> dict:
        recaps = [e for e in self.events if e.get("event") == "recap"]
        assert recaps, f"no recap in output:\n{self.stdout}\n{self.stderr}"
        return recaps[-1]["hosts"]


def sb(lab, *args: str, tool: str = "inv", json_lines: bool = True, env: dict | None = None,
       hosts_env: str | None = None, timeout: int = 900, cwd: Path | str = REPO) -> Outcome:
    """``inv ARGS --json`` (or fab) with SWARMBOOK_ENV pointing at the lab's hosts file and
    SSH_KNOWN_HOSTS at the lab's known_hosts (so `fab -H` runs without a hosts file, and test
    copies of hosts.env, trust the lab's host keys and record nothing in ~/.ssh/known_hosts)."""
    argv = [tool, *args]
    if json_lines:
        argv.append("--json")
    e = {**os.environ, "SWARMBOOK_ENV": hosts_env or str(lab.hosts_env),
         "SSH_KNOWN_HOSTS": str(lab.known_hosts), **(env or {})}
    p = subprocess.run(argv, cwd=cwd, env=e, capture_output=True, text=True, timeout=timeout)
    events = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return Outcome(p.returncode, p.stdout, p.stderr, events)


def roles_file(lab, folder: Path, managers, workers) -> str:
    """A copy of the lab's hosts.env in ``folder`` with other MANAGERS/WORKERS (hosts by index),
    each host with the SSH port the lab's file records for it (bootstrap-all moves h1's to 2222)."""
    def entry(i: int) -> str:
        addr = lab.hosts[i].addr
        port = recorded_port(lab, addr)
        return addr if port == 22 else f"{addr}:{port}"

    lines = []
    for line in lab.hosts_env.read_text().splitlines():
        if line.startswith("MANAGERS="):
            line = "MANAGERS=" + ",".join(entry(i) for i in managers)
        elif line.startswith("WORKERS="):
            line = "WORKERS=" + ",".join(entry(i) for i in workers)
        lines.append(line)
    path = Path(folder) / "hosts.env"
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return str(path)


def recorded_port(lab, addr: str) -> int:
    """The SSH port the lab's hosts file records for ``addr`` (sshd.move-port may have moved it)."""
    m = re.search(rf"(?<![0-9.]){re.escape(addr)}:(\d+)", lab.hosts_env.read_text())
    return int(m.group(1)) if m else 22


def ssh(lab, host, command: str, *, check: bool = True, port: int | None = None) -> subprocess.CompletedProcess:
    """A plain OpenSSH login to a lab host (independent of swarmbook's own SSH code)."""
    addr = host.addr if hasattr(host, "addr") else host
    port = recorded_port(lab, addr) if port is None else port
    argv = ["ssh", "-i", str(lab.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5", "-p", str(port), f"root@{addr}", command]
    for attempt in range(1, CONFLICT_TRIES + 1):  # swarm refused a write as out of sequence: again, as swarmbook does
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if p.returncode == 0 or CONFLICT not in p.stderr or attempt == CONFLICT_TRIES:
            break
        time.sleep(attempt)
    if check and p.returncode != 0:
        raise AssertionError(f"{addr}: {command!r} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def all_managers_env(lab, folder) -> str:
    """A copy of the lab's hosts file (in ``folder``, 0600) with every host in MANAGERS and no
    WORKERS, and SWARM_KEYS_DIR in ``folder``/keys: the disaster drill's three-manager cluster."""
    path = Path(roles_file(lab, folder, managers=range(len(lab.hosts)), workers=[]))
    path.write_text(path.read_text() + f"SWARM_KEYS_DIR={Path(folder) / 'keys'}\n")
    return str(path)


def until(what: str, probe, done, timeout: float = 120, interval: float = 2):
    """Call ``probe()`` until ``done(value)``; returns the value, or fails naming ``what`` and the last value."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout:.0f}s; last seen: {value}")
        time.sleep(interval)
