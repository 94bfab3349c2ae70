"""A cluster lock, so two operators do not change the same cluster at once (as Kamal does).

The lock is a directory on the first manager (``mkdir`` is atomic), holding who took it,
when, and for which task. A second run waits up to LOCK_WAIT seconds, then fails with one
line naming the holder. ``inv lock.release`` clears a lock left by a killed run; /run is
emptied at boot, so a reboot clears it too. Check-mode runs take no lock.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time

from .engine import Host
from .errors import SwarmbookError
from .shell import quote

PATH = "/run/swarmbook.lock"


class Locked(SwarmbookError):
    exit_code = 3


def owner_line(task: str) -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} task {task} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"


def acquire_cmd(owner: str) -> str:
    p = quote(PATH)
    return f"if mkdir {p} 2>/dev/null; then printf '%s\\n' {quote(owner)} > {p}/owner; echo TAKEN; else cat {p}/owner 2>/dev/null || echo unknown; fi"


def release_cmd() -> str:
    return f"rm -rf {quote(PATH)}"


def stale(owner: str, *, here: str | None = None, alive=None) -> bool:
    """A lock taken from this machine by a process that no longer exists (a killed run)."""
    m = re.match(r"^\S+@(\S+) pid (\d+) ", owner)
    if not m or m.group(1) != (here or socket.gethostname()):
        return False
    pid = int(m.group(2))
    if alive is not None:
        return not alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(h: Host, task: str, *, wait: float) -> str:
    """Take the lock on ``h`` or raise Locked naming the holder. Returns the owner line.

    A lock left by a killed run of this same machine is taken over (with a note); any
    other holder makes the run wait up to ``wait`` seconds, then fail.
    """
    owner = owner_line(task)
    deadline = time.monotonic() + wait
    while True:
        out = h.try_run(acquire_cmd(owner)).stdout.strip()
        if out == "TAKEN":
            return owner
        if stale(out):
            h.note(f"taking over the cluster lock left by a run that is gone: {out}", level="warning")
            release(h)
            continue
        if time.monotonic() >= deadline:
            raise Locked(f"cluster locked on {h.name} by {out}; wait, or if that run is gone: "
                         f"inv lock.release")
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def release(h: Host) -> None:
    h.try_run(release_cmd())
