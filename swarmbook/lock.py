"""A cluster lock, so two operators do not change the same cluster at once (as Kamal does).

The lock is a directory on the first manager (``mkdir`` is atomic), holding who took it,
when, and for which task. A second run waits up to LOCK_WAIT seconds, then fails with one
line naming the holder. ``inv lock.release`` clears a lock left by a killed run; /run is
emptied at boot, so a reboot clears it too. Check-mode runs take no lock.

When no manager answers, a changing run stops before any change (:class:`Unreachable`),
unless ``--no-lock`` asks to run unlocked. Both refusals exit with code 3: the run did not
get the cluster lock and changed nothing (1 is "hosts failed", 2 is bad input).

A lock is released only by its holder: :func:`release_cmd` removes it when its owner line
still starts with the holder given (a run's own ``user@host pid N``, or the line
``lock.release`` showed), so a run whose lock was cleared and taken by another run does not
remove the other's. (Between reading the owner and renaming the lock away there is a window
of one shell statement; two releases racing inside it are not guarded against.)
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time

from .engine import Host
from .errors import SwarmbookError
from .facts import Fact
from .shell import quote

PATH = "/run/swarmbook.lock"
TAKEN = "TAKEN"  # what acquire_cmd prints when it took the lock
UNKNOWN = "unknown"  # the owner of a lock directory without an owner file (a run killed right after mkdir)


class Locked(SwarmbookError):
    """The lock is held by another run: nothing was changed (exit code 3)."""

    exit_code = 3


class Unreachable(Locked):
    """No host that could hold the lock answered: nothing was changed (exit code 3, as Locked)."""


def unreachable_message(tried: list[str], *, managers: bool) -> str:
    """The one line for :class:`Unreachable`: each host tried for the lock, and why it failed."""
    why = "; ".join(tried)
    who = (f"no manager answered ({why}); rerun when one does" if managers else
           f"MANAGERS is empty, so the lock goes on the first target host, which did not answer ({why}); "
           "rerun when it does")
    return f"cluster lock not taken, nothing changed: {who}, or with --no-lock to change the hosts without the lock"


def holder_id() -> str:
    """This process as the start of its owner lines: ``user@host pid N`` (ends before " task")."""
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


def owner_line(task: str) -> str:
    return f"{holder_id()} task {task} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}"


def _owner_of(p: str) -> str:
    return f"cat {p}/owner 2>/dev/null || echo {UNKNOWN}"


def acquire_cmd(owner: str, path: str = PATH) -> str:
    """Take the lock: prints TAKEN, or the holder's owner line (``unknown`` when it has none)."""
    p = quote(path)
    return f"if mkdir {p} 2>/dev/null; then printf '%s\\n' {quote(owner)} > {p}/owner; echo {TAKEN}; else {_owner_of(p)}; fi"


def owner_cmd(path: str = PATH) -> str:
    """Print the holder's owner line (``unknown`` for a lock without one); exit 1 when free."""
    p = quote(path)
    return f"if [ -d {p} ]; then {_owner_of(p)}; else exit 1; fi"


def owner_fact(path: str = PATH) -> Fact:
    """The holder's owner line; None when the lock is free."""
    return Fact("lock owner", owner_cmd(path), lambda text, rc: text.strip() if rc == 0 else None)


def release_cmd(holder: str, path: str = PATH) -> str:
    """Remove the lock when its owner line starts with ``holder``; exit 0 also when it is free.
    Held by someone else: exit 1 naming them on stderr, and the lock stays."""
    p = quote(path)
    return (f"if [ -d {p} ]; then current=$({_owner_of(p)}); case \"$current\" in {quote(holder)}*) "
            f"gone={quote(path + '.released')}.$$ && mv {p} \"$gone\" && rm -rf \"$gone\";; "
            "*) echo \"held by $current\" >&2; exit 1;; esac; fi")


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


def acquire(h: Host, task: str, *, wait: float, path: str = PATH) -> str:
    """Take the lock on ``h`` or raise Locked naming the holder. Returns the owner line.

    A lock left by a killed run of this same machine is taken over (with a note); any
    other holder makes the run wait up to ``wait`` seconds, then fail.
    """
    owner = owner_line(task)
    deadline = time.monotonic() + wait
    taken_over: set[str] = set()  # once each: a lock that survives its release is waited for
    while True:
        out = h.try_run(acquire_cmd(owner, path)).stdout.strip()
        if out == TAKEN:
            return owner
        if out not in taken_over and stale(out):
            taken_over.add(out)
            h.note(f"taking over the cluster lock left by a run that is gone: {out}", level="warning")
            if h.try_run(release_cmd(out, path)).rc == 0:  # only that run's lock, if no one took it over first
                continue
        if time.monotonic() >= deadline:
            raise Locked(f"cluster locked on {h.name} by {out}; wait, or if that run is gone: "
                         f"inv lock.release")
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))


def release(h: Host, holder: str | None = None, *, path: str = PATH) -> None:
    """Release the lock this process holds (or the one ``holder`` names); another's stays, with a note."""
    res = h.try_run(release_cmd(holder or f"{holder_id()} ", path))
    if res.rc != 0:
        h.note(f"cluster lock not released: {res.stderr.strip() or f'exit {res.rc}'}", level="warning")
