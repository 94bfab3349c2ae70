"""Per-host step results, printed as they happen, and the recap that closes every run.

Two formats: human lines (default) and JSON lines (``--json`` / SWARMBOOK_JSON=1) for
runbooks and CI. Every text passes through the run's :class:`~swarmbook.shell.Masker`.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import TextIO

from .shell import Masker

OK, CHANGED, FAILED, SKIPPED = "ok", "changed", "failed", "skipped"
STATUSES = (OK, CHANGED, FAILED, SKIPPED)


@dataclass
class Event:
    task: str
    host: str
    step: str
    status: str
    reason: str = ""
    check: bool = False


class Reporter:
    """Collects events from many host threads; prints each one, then a recap."""

    def __init__(self, masker: Masker | None = None, *, json_lines: bool = False,
                 out: TextIO | None = None, err: TextIO | None = None):
        self.mask = masker or Masker()
        self.json_lines = json_lines
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event, *, shown: bool = True) -> None:
        """Record a step and print it; ``shown=False`` records it for the recap without a text
        line (a task that prints its own table, e.g. doctor; JSON lines always carry it)."""
        event.reason = self.mask(event.reason)
        event.step = self.mask(event.step)
        with self._lock:
            self.events.append(event)
            if not (shown or self.json_lines):
                return
            if self.json_lines:
                self.out.write(json.dumps({"event": "step", **asdict(event)}) + "\n")
            else:
                label = "would change" if event.check and event.status == CHANGED else event.status
                tail = f": {event.reason}" if event.reason else ""
                self.out.write(f"{event.host:<16} {label:<12} {event.task} | {event.step}{tail}\n")
            self.out.flush()

    def note(self, text: str, *, host: str = "", level: str = "info") -> None:
        """A progress or warning line (stderr for humans, a JSON line otherwise)."""
        text = self.mask(text)
        with self._lock:
            if self.json_lines:
                self.out.write(json.dumps({"event": level, "host": host, "text": text}) + "\n")
                self.out.flush()
            else:
                prefix = f"{host:<16} " if host else ""
                self.err.write(f"{prefix}{level}: {text}\n" if level != "info" else f"{prefix}{text}\n")
                self.err.flush()

    def counts(self, task: str | None = None) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for e in self.events:
            if task is None or e.task == task:
                row = table.setdefault(e.host, dict.fromkeys(STATUSES, 0))
                row[e.status] += 1
        return table

    def failed_hosts(self, task: str | None = None) -> list[str]:
        return [h for h, row in self.counts(task).items() if row[FAILED]]

    def recap(self, title: str, started: float, task: str | None = None) -> None:
        table = self.counts(task)
        elapsed = time.monotonic() - started
        with self._lock:
            if self.json_lines:
                self.out.write(json.dumps({"event": "recap", "task": title, "seconds": round(elapsed, 3),
                                           "hosts": table}) + "\n")
            else:
                self.out.write(f"\nRECAP {title} ({elapsed:.1f}s)\n")
                self.out.write(f"{'host':<16} " + " ".join(f"{s:>8}" for s in STATUSES) + "\n")
                for host, row in table.items():
                    self.out.write(f"{host:<16} " + " ".join(f"{row[s]:>8}" for s in STATUSES) + "\n")
                if not table:
                    self.out.write("(no hosts)\n")
            self.out.flush()


_LONG_QUOTED = re.compile(r"'([^'\n]{80})[^'\n]*'|\"([^\"\n]{80})[^\"\n]*\"")


def clip(error: str) -> str:
    """One line, and no value echoed back whole: a quoted value longer than 80 characters keeps
    its first 60 (a 1 MB setting or argument is not printed back), and the line stops at 500."""
    line = " ".join(error.split("\n"))
    line = _LONG_QUOTED.sub(lambda m: f"{(m.group(1) or m.group(2))[:60]!r}... (cut)", line)
    return line if len(line) <= 500 else line[:480] + "... (cut)"


def refusal(error: str, *, json_lines: bool, label: str = "error", out: TextIO | None = None) -> str | None:
    """A run stopped outside any host's steps: bad input (refused before any host is touched),
    a cluster lock someone else holds, or a bug.

    Text: returns the one line ``swarmbook: <label>: <error>`` for the caller's exit to print
    on stderr. JSON lines: writes one object ``{"event": "error", "error": ...}`` to stdout,
    so a runbook reading stdout gets JSON either way, and returns None (nothing more to print).
    """
    error = clip(error)
    if not json_lines:
        return f"swarmbook: {label}: {error}"
    out = out or sys.stdout
    out.write(json.dumps({"event": "error", "error": error}) + "\n")
    out.flush()
    return None
