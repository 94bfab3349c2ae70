"""A scripted stand-in for the SSH pool: maps command patterns to results, fails on surprises.

Used only for task-flow tests (which commands a task sends given some facts); the lab
tests prove the same tasks on real hosts.

Facts are scripted by the :class:`~swarmbook.facts.Fact` the task's own builder makes
(``{F.command_exists("docker"): ("/usr/bin/docker", 0)}``), and answered only when the task
sends that fact's very command: a fact of the right name built from a wrong path, unit or
format fails the test, as a wrong command would. A fact that is meant to be absent is listed
with a non-zero rc, e.g. ``{F.docker_info(): ABSENT}``.

A surprise (a command no pattern matches, a fact the table does not list, a fact whose
command differs from the scripted one) raises :class:`Unexpected`, a BaseException: the
engine records any Exception from a host body as that host's failure, which a test that
forgets to check ``run.failed()`` would not notice; this escapes the engine and fails the
test itself.
"""

from __future__ import annotations

import io
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from swarmbook.config import parse
from swarmbook.engine import Run
from swarmbook.facts import Fact
from swarmbook.report import Reporter
from swarmbook.session import ConnectFailed, Result

ABSENT = ("", 1)  # a fact whose command fails: a missing file, a stopped unit, no such command


class Unexpected(BaseException):
    """The task sent something the test did not script."""


@dataclass(frozen=True)
class FakeConn:
    host: str
    fresh: bool


Response = Result | Callable[[str, str], Result]  # a Result, or (command, host) -> Result
Answer = tuple[str, int]  # a fact's (stdout, rc)

# One fact in a batch (facts.batch): its marker, its command in a subshell, its exit code.
_BATCHED = re.compile(r"#fact (?P<name>\S+)\nprintf '%s\\n' '@@(?P<token>[0-9a-f]+):(?P<i>\d+)@@'\n"
                      r"\( (?P<command>.*?)\n\) 2>/dev/null\n"
                      r"printf '\\n@@(?P=token):(?P=i):rc=%s@@\\n' \"\$\?\"", re.S)


def _batch_name(fact: Fact) -> str:
    return fact.name.replace(" ", "_")  # as facts.batch marks it


def unwrapped(command: str) -> str:
    """The script a non-root host's ``sudo -n sh -c '...'`` runs."""
    if command.startswith("sudo -n sh -c "):
        return shlex.split(command)[-1]
    return command


class FactTable:
    """Scripted facts, keyed by the Fact a builder made: answered by name *and* command."""

    def __init__(self, facts: Mapping[Fact, Answer] | Iterable[tuple[Fact, Answer]] | None = None):
        self._by_name: dict[str, dict[str, Answer]] = {}
        for fact, answer in (facts.items() if isinstance(facts, Mapping) else facts or ()):
            self[fact] = answer

    def __setitem__(self, fact: Fact, answer: Answer) -> None:
        if not isinstance(fact, Fact):
            raise TypeError(f"script the fact {fact!r} by the Fact its builder makes (e.g. F.command_exists('docker')), "
                            "not by its name: the fake answers only the command that builder sends")
        self._by_name.setdefault(_batch_name(fact), {})[fact.command] = answer

    def update(self, facts: Mapping[Fact, Answer]) -> None:
        for fact, answer in facts.items():
            self[fact] = answer

    def knows(self, name: str) -> bool:
        return name in self._by_name

    def answer(self, name: str, command: str) -> Answer:
        scripted = self._by_name.get(name)
        if not scripted:
            raise Unexpected(f"unexpected fact {name} (list it, with ABSENT if it should fail)")
        if command not in scripted:
            listed = "\n  ".join(scripted)
            raise Unexpected(f"fact {name}: the task sent\n  {command}\nbut the test scripts its command as\n  {listed}")
        return scripted[command]


class FakePool:
    def __init__(self, facts: Mapping[Fact, Answer] | None = None, run: dict[str, Response] | None = None,
                 down: Mapping[str, str] | None = None, hosts: Mapping[str, Mapping[Fact, Answer]] | None = None):
        self.facts = FactTable(facts)
        # facts that differ per host (each node's own docker info): asked there, they win over ``facts``
        self.host_facts = {h: FactTable(f) for h, f in (hosts or {}).items()}
        self.responses = run or {}  # regexp -> Result or callable
        self.down = dict(down or {})  # host -> why a connect to it fails (ConnectFailed)
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
        if spec.host in self.down:
            raise ConnectFailed(self.down[spec.host])
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
            return Result(self._batch(unwrapped(command), host), "", 0)
        for pattern, result in self.responses.items():
            if re.search(pattern, command):
                return result(command, host) if callable(result) else result
        raise Unexpected(f"unexpected command on {host}: {command}")

    def _batch(self, script: str, host: str = "?") -> str:
        entries = list(_BATCHED.finditer(script))
        if len(entries) != script.count("#fact "):
            raise Unexpected(f"a facts batch the fake cannot read:\n{script}")
        out = []
        own = self.host_facts.get(host)
        for m in entries:
            table = own if own is not None and own.knows(m["name"]) else self.facts
            text, rc = table.answer(m["name"], m["command"])
            out.append(f"@@{m['token']}:{m['i']}@@\n{text}\n@@{m['token']}:{m['i']}:rc={rc}@@\n")
        return "".join(out)

    def changes(self) -> list[str]:
        return [c for c, _ in self.sent if "@@" not in c]


class Clock:
    """A clock that advances only when the engine sleeps (``make_run(..., clock=c, sleep=c.sleep)``):
    a wait of minutes takes no time."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_run(pool: FakePool, env: str = "MANAGERS=h1\n", *, check: bool = False, task: str = "t.t",
             json_lines: bool = False, **run_kw):
    out = io.StringIO()
    run = Run(task, parse(env, environ={}), Reporter(out=out, err=out, json_lines=json_lines), check=check,
              pool=pool, key="", **run_kw)
    return run, out


def tar_bytes(members: dict[str, bytes], *, gz: bool = False) -> bytes:
    """A tar holding ``members`` (name -> content): uncompressed as portainer_data's backup is,
    gzip'ed (``gz``) as a swarm.backup archive is."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
