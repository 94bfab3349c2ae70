"""A scripted stand-in for the SSH pool: maps command patterns to results, fails on surprises.

Used only for task-flow tests (which commands a task sends given some facts); the lab
tests prove the same tasks on real hosts.

A surprise (a command no pattern matches, a fact the table does not name) raises
:class:`Unexpected`, a BaseException: the engine records any Exception from a host body as
that host's failure, which a test that forgets to check ``run.failed()`` would not notice;
this escapes the engine and fails the test itself. A fact that is meant to be absent is
listed with a non-zero rc, e.g. ``{"docker_info": ABSENT}``.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from swarmbook.config import parse
from swarmbook.engine import Run
from swarmbook.report import Reporter
from swarmbook.session import Result

ABSENT = ("", 1)  # a fact whose command fails: a missing file, a stopped unit, no such command


class Unexpected(BaseException):
    """The task sent something the test did not script."""


@dataclass(frozen=True)
class FakeConn:
    host: str
    fresh: bool


Response = Result | Callable[[str, str], Result]  # a Result, or (command, host) -> Result


class FakePool:
    def __init__(self, facts: dict[str, tuple[str, int]] | None = None, run: dict[str, Response] | None = None):
        self.facts = facts or {}   # fact name -> (stdout, rc)
        self.responses = run or {}  # regexp -> Result or callable
        self.sent: list[tuple[str, str | None]] = []
        self.on: list[tuple[FakeConn, str]] = []  # (connection, command) in the order sent
        self.connects: list[tuple[str, bool, int]] = []  # (host, fresh, commands sent before it)
        self.order: list[str] = []  # "connect host:port" and "vouch host:port", in the order made
        self.commands_run = 0
        self.lock_held = False
        self._lock = threading.Lock()

    def connect(self, spec, *, fresh: bool = False, **kw):
        with self._lock:
            self.connects.append((spec.host, fresh, len(self.sent)))
            self.order.append(f"connect {spec.host}:{spec.port}")
        return FakeConn(spec.host, fresh)

    def vouch(self, conn, spec, known_hosts) -> None:
        """sshd.move-port records the checked key under the new port (noted in ``order``)."""
        with self._lock:
            self.order.append(f"vouch {spec.host}:{spec.port}")

    def reconnects(self, host: str | None = None) -> int:
        """How many fresh (new-session) connects were made, e.g. after a group change."""
        return sum(1 for h, fresh, _ in self.connects if fresh and (host is None or h == host))

    def exec(self, conn, command, *, stdin=None, timeout=None, label=""):
        data = stdin.reveal() if hasattr(stdin, "reveal") else stdin
        host = getattr(conn, "host", "?")
        with self._lock:
            self.commands_run += 1
            self.sent.append((command, data))
            self.on.append((conn, command))
        if "@@" in command:  # a facts batch: answer each fact from the table
            return Result(self._batch(command), "", 0)
        for pattern, result in self.responses.items():
            if re.search(pattern, command):
                return result(command, host) if callable(result) else result
        raise Unexpected(f"unexpected command on {host}: {command}")

    def _batch(self, command: str) -> str:
        token = re.search(r"@@([0-9a-f]+):0@@", command).group(1)
        out = []
        for i, name in enumerate(re.findall(r"#fact (\S+)", command)):
            if name not in self.facts:
                raise Unexpected(f"unexpected fact {name} (list it, with ABSENT if it should fail)")
            text, rc = self.facts[name]
            out.append(f"@@{token}:{i}@@\n{text}\n@@{token}:{i}:rc={rc}@@\n")
        return "".join(out)

    def changes(self) -> list[str]:
        return [c for c, _ in self.sent if "@@" not in c]


def make_run(pool: FakePool, env: str = "MANAGERS=h1\n", *, check: bool = False, task: str = "t.t",
             json_lines: bool = False, **run_kw):
    out = io.StringIO()
    run = Run(task, parse(env, environ={}), Reporter(out=out, err=out, json_lines=json_lines), check=check,
              pool=pool, key="", **run_kw)
    return run, out


def tar_bytes(members: dict[str, bytes]) -> bytes:
    """An uncompressed tar holding ``members`` (name -> content), as portainer_data's backup is."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
