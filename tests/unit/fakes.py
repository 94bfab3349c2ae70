"""A scripted stand-in for the SSH pool: maps command patterns to results, fails on surprises.

Used only for task-flow tests (which commands a task sends given some facts); the lab
tests prove the same tasks on real hosts.
"""

from __future__ import annotations

import re

from swarmbook import facts as F
from swarmbook.config import parse
from swarmbook.engine import Run
from swarmbook.report import Reporter
from swarmbook.session import Result


class FakePool:
    def __init__(self, facts: dict[str, tuple[str, int]] | None = None, run: dict[str, Result] | None = None):
        self.facts = facts or {}   # fact name -> (stdout, rc)
        self.responses = run or {}  # regexp -> Result
        self.sent: list[tuple[str, str | None]] = []
        self.commands_run = 0

    def connect(self, spec, **kw):
        return object()

    def exec(self, conn, command, *, stdin=None, timeout=None, label=""):
        self.commands_run += 1
        data = stdin.reveal() if hasattr(stdin, "reveal") else stdin
        self.sent.append((command, data))
        if "@@" in command:  # a facts batch: answer each fact from the table
            return Result(self._batch(command), "", 0)
        for pattern, result in self.responses.items():
            if re.search(pattern, command):
                return result
        raise AssertionError(f"unexpected command: {command}")

    def _batch(self, command: str) -> str:
        token = re.search(r"@@([0-9a-f]+):0@@", command).group(1)
        out = []
        for i, name in enumerate(re.findall(r"#fact (\S+)", command)):
            text, rc = self.facts.get(name, ("", 1))
            out.append(f"@@{token}:{i}@@\n{text}\n@@{token}:{i}:rc={rc}@@\n")
        return "".join(out)

    def changes(self) -> list[str]:
        return [c for c, _ in self.sent if "@@" not in c]


def make_run(pool: FakePool, env: str = "MANAGERS=h1\n", *, check: bool = False, task: str = "t.t"):
    out = __import__("io").StringIO()
    run = Run(task, parse(env, environ={}), Reporter(out=out, err=out), check=check, pool=pool, key="")
    return run, out
