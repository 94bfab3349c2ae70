"""The execution engine: one task body, many hosts, in parallel, with per-step reports.

A task body gets a :class:`Host` and talks to it through three verbs:
``probe(*facts)`` (read-only, runs in check mode too, one round trip for all facts),
``change(step, cmd)`` (skipped in check mode, reported as changed) and ``ok(step)``.
:class:`Run` fans a body out over hosts, catches per-host failures and closes with a recap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import facts as F
from .config import HostSpec, Settings
from .errors import StepFailed, SwarmbookError, Unmet
from .hostkeys import KnownHosts
from .report import CHANGED, FAILED, OK, SKIPPED, Event, Reporter
from .session import POOL, ConnectFailed, Pool, Result
from .shell import Secret


# swarmkit's optimistic concurrency: a node or service update made against a version another
# writer (the dispatcher, the role manager, a second client) has already replaced is refused
# whole with this error; the same command again reads the new version (moby/moby#30794).
CONFLICT = "update out of sequence"
CONFLICT_TRIES = 4


class Host:
    """One host within one run of one task."""

    def __init__(self, run: "Run", spec: HostSpec, conn: Any):
        self.run_ = run
        self.spec = spec
        self.name = str(spec)
        self.conn = conn
        self.changed_any = False
        self.facts_cache: dict[str, Any] = {}

    @property
    def check(self) -> bool:
        return self.run_.check

    @property
    def settings(self) -> Settings:
        return self.run_.settings

    def _wrap(self, command: str) -> str:
        if self.spec.user == "root":
            return command
        from .shell import quote
        return f"sudo -n sh -c {quote(command)}"

    def run(self, command: str, *, stdin: str | bytes | Secret | None = None, timeout: float | None = 600,
            step: str = "") -> Result:
        """Run a command; a non-zero exit raises StepFailed with the command's last error line.
        A write swarm refused as out of sequence (another writer changed the same node or
        service first; nothing was written) is sent again, up to CONFLICT_TRIES times."""
        for attempt in range(1, CONFLICT_TRIES + 1):
            res = self.run_.pool.exec(self.conn, self._wrap(command), stdin=stdin, timeout=timeout,
                                      label=self.run_.task)
            if res.rc == 0 or CONFLICT not in res.stderr or attempt == CONFLICT_TRIES:
                break
            self.note(f"{step or 'command'}: swarm said {CONFLICT!r} (another write to the same object "
                      f"came first; nothing written), sending it again ({attempt + 1} of {CONFLICT_TRIES})",
                      level="warning")
            self.run_.sleep(attempt)
        if res.rc != 0:
            lines = (res.stderr.strip() or res.stdout.strip() or f"exit {res.rc}").splitlines()
            raise StepFailed(f"{step + ': ' if step else ''}{lines[-1][:300]} (exit {res.rc})")
        return res

    def try_run(self, command: str, *, stdin: str | bytes | Secret | None = None, timeout: float | None = 600) -> Result:
        """Run a command and return its result whatever the exit code."""
        return self.run_.pool.exec(self.conn, self._wrap(command), stdin=stdin, timeout=timeout,
                                   label=self.run_.task)

    def probe(self, *facts: F.Fact) -> dict[str, Any]:
        """Gather facts in one round trip; read-only, so it also runs in check mode."""
        if not facts:
            return {}
        script, token = F.batch(list(facts))
        res = self.try_run(script)
        values = F.split(res.stdout, token, list(facts))
        self.facts_cache.update(values)
        return values

    def change(self, step: str, command: str | None = None, *, stdin: str | bytes | Secret | None = None,
               reason: str = "", timeout: float | None = 900) -> None:
        """Make a change (unless check mode) and report it as changed."""
        if not self.check and command is not None:
            self.run(command, stdin=stdin, timeout=timeout, step=step)
        self.changed_any = True
        self.run_.emit(self.name, step, CHANGED, reason)

    def ok(self, step: str, reason: str = "") -> None:
        self.run_.emit(self.name, step, OK, reason)

    def skip(self, step: str, reason: str) -> None:
        self.run_.emit(self.name, step, SKIPPED, reason)

    def fail(self, step: str, reason: str) -> None:
        raise StepFailed(f"{step}: {reason}")

    def needs(self, step: str, reason: str) -> None:
        """Stop here: a prerequisite an earlier task makes is missing ("... (run X first)").
        Failed, or skipped in check mode, where X would have made it first."""
        raise Unmet(f"{step}: {reason}")

    def note(self, text: str, level: str = "info") -> None:
        self.run_.reporter.note(text, host=self.name, level=level)

    def wait(self, what: str, ready: Callable[[], bool], *, timeout: float = 120, interval: float = 1.0) -> None:
        """Poll ``ready`` until true; print progress every 10 s; StepFailed on timeout."""
        clock = self.run_.clock
        start = last = clock()
        try:
            while not ready():
                now = clock()
                if now - start > timeout:
                    raise StepFailed(f"{what}: not ready after {timeout:.0f}s")
                if now - last >= 10:
                    self.note(f"waiting for {what} ({now - start:.0f}s of {timeout:.0f}s)")
                    last = now
                self.run_.sleep(interval)
        finally:  # for bench/: time spent polling a host until it is ready
            timeline = getattr(self.run_.pool, "timeline", None)
            if timeline is not None:
                timeline.append(("wait", self.name, self.run_.task, start, clock()))

    def reconnect(self) -> None:
        """New SSH session (e.g. so a new group membership applies)."""
        self.conn = self.run_.connect(self.spec, fresh=True)


HostBody = Callable[[Host], None]


class Run:
    """One task over a set of hosts: connect in parallel, run the body, record everything."""

    def __init__(self, task: str, settings: Settings, reporter: Reporter, *, check: bool = False,
                 pool: Pool = POOL, key: str | None = None, timeout: int | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.task = task
        self.clock = clock  # what Host.wait polls with (a test passes a fake clock)
        self.sleep = sleep
        self.settings = settings
        self.reporter = reporter
        self.check = check
        self.pool = pool
        self.key = settings["SSH_KEY"] if key is None else key
        self.timeout = settings["SSH_CONNECT_TIMEOUT"] if timeout is None else timeout
        self.known_hosts = KnownHosts.for_file(settings["SSH_KNOWN_HOSTS"])
        self.started = time.monotonic()
        for s in settings.secrets():
            reporter.mask.add(s)

    def emit(self, host: str, step: str, status: str, reason: str = "", *, shown: bool = True) -> None:
        self.reporter.emit(Event(self.task, host, step, status, reason, self.check), shown=shown)

    def connect(self, spec: HostSpec, *, fresh: bool = False) -> Any:
        """The pool's connection to ``spec`` with this run's key, timeout and known_hosts."""
        return self.pool.connect(spec, known_hosts=self.known_hosts, key=self.key, timeout=self.timeout,
                                 fresh=fresh)

    def open(self, spec: HostSpec) -> Host:
        return Host(self, spec, self.connect(spec))

    def warm(self, specs: Iterable[HostSpec]) -> dict[HostSpec, str]:
        """Open the connections of ``specs`` in parallel ahead of use, so a lock taken on one host
        does not serialise the others' handshakes. Returns why each host that failed did (the
        steps report them; the lock names the managers it could not reach)."""
        specs = list(specs)
        if len(specs) < 2:
            return {}
        down: dict[HostSpec, str] = {}

        def connect(spec: HostSpec) -> None:
            try:
                self.open(spec)
            except ConnectFailed as exc:
                down[spec] = str(exc)

        with ThreadPoolExecutor(max_workers=min(32, len(specs))) as ex:
            list(ex.map(connect, specs))
        return down

    def one(self, spec: HostSpec, body: HostBody) -> Host | None:
        """Run ``body`` on one host; a failure is recorded, never raised."""
        try:
            host = self.open(spec)
        except ConnectFailed as exc:
            self.emit(str(spec), "connect", FAILED, str(exc))
            return None
        try:
            body(host)
        except Unmet as exc:
            if self.check:
                self.emit(str(spec), "not yet", SKIPPED, f"{exc}; nothing more to check until then")
            else:
                self.emit(str(spec), "failed", FAILED, str(exc))
        except StepFailed as exc:
            self.emit(str(spec), "failed", FAILED, str(exc))
        except SwarmbookError as exc:
            self.emit(str(spec), "refused", FAILED, str(exc))
        except Exception as exc:  # a bug or an SSH drop: still one line per host
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self.emit(str(spec), "error", FAILED, f"{type(exc).__name__}: {first}")
        return host

    def each(self, specs: Iterable[HostSpec], body: HostBody) -> list[Host]:
        """Run ``body`` on every host in parallel; returns the hosts that connected."""
        specs = list(specs)
        if not specs:
            return []
        with ThreadPoolExecutor(max_workers=min(32, len(specs))) as ex:
            hosts = list(ex.map(lambda s: self.one(s, body), specs))
        return [h for h in hosts if h is not None]

    def failed(self) -> list[str]:
        return self.reporter.failed_hosts(self.task)

    def recap(self) -> None:
        self.reporter.recap(self.task + (" (check mode: nothing changed)" if self.check else ""),
                            self.started, self.task)


__all__ = ["Host", "Run", "OK", "CHANGED", "FAILED", "SKIPPED"]
