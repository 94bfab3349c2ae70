"""SSH connections, one per host, opened once and reused for the whole process.

The pool is the process's one piece of shared state: chained tasks (``inv a b``,
``bootstrap-all``) reuse connections instead of paying the SSH handshake again, and
``fab -H a,b`` runs a task once for all hosts (see :func:`claim_fab_call`).
Commands run on a bare paramiko channel with TCP_NODELAY and dead-peer detection: no pty, stdin only when
given, stdout/stderr read concurrently. Every connect checks the host's key in the handshake
(:mod:`swarmbook.hostkeys`): a host whose key is not on record gets no command.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass

from .config import HostSpec
from .hostkeys import Guard, HostKeyRefused, KnownHosts, vouch
from .shell import Secret

# paramiko logs a traceback of its transport thread to stderr when no handler is set (a port that
# accepts TCP but never sends an SSH banner); the one-line reason below says what happened.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass
class Result:
    stdout: str
    stderr: str
    rc: int

    @property
    def ok(self) -> bool:
        return self.rc == 0


class ConnectFailed(Exception):
    pass


class Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: dict[tuple[str, str, int], object] = {}
        self._fab_claims: set[tuple[str, str]] = set()
        # hosts that could not be reached in this process: later steps fail at once instead of
        # waiting out the connect timeout again (a fresh connect, e.g. after a reboot, retries)
        self._down: dict[tuple[str, str, int], str] = {}
        self.commands_run = 0  # round trips, for the benchmark
        self.lock_held = False  # this process holds the cluster lock (nested tasks skip it)
        # (kind, host, task, start, end) of every remote command and SSH connect, for bench/
        self.timeline: list[tuple[str, str, str, float, float]] = []

    def connect(self, spec: HostSpec, *, known_hosts: KnownHosts, key: str = "", timeout: int = 5,
                fresh: bool = False):
        """An open fabric Connection to ``spec`` (cached unless ``fresh``) whose host key
        ``known_hosts`` vouches for (recorded on first contact; a changed key: ConnectFailed)."""
        ident = (spec.user, spec.host, spec.port)
        with self._lock:
            conn = self._conns.get(ident)
            down = None if fresh else self._down.get(ident)
        if down:
            raise ConnectFailed(f"{down} (earlier in this run; not retried)")
        if conn is not None and not fresh and conn.is_connected:
            return conn
        if conn is not None:
            conn.close()
        from fabric import Config, Connection  # lazy: keeps `inv --list` fast

        kwargs = {"banner_timeout": timeout, "auth_timeout": timeout}
        conn = None
        if key:
            kwargs.update(key_filename=[key], look_for_keys=False, allow_agent=False)
        t0 = time.monotonic()
        try:
            # our own TCP socket, tuned before the SSH handshake: with Nagle on, the handshake's
            # small packets wait on delayed ACKs (measured: 84 ms -> 45 ms per connect)
            kwargs["sock"] = _dial(spec, timeout)
            # the host key is judged inside the handshake, before authentication (hostkeys.py)
            guard = Guard(known_hosts, spec.user, spec.host, spec.port)
            kwargs["transport_factory"] = guard.transport
            conn = Connection(spec.host, user=spec.user, port=spec.port, connect_timeout=timeout,
                              connect_kwargs=kwargs, config=Config())
            # a Config of its own (0.6 ms): one shared by the connecting threads once failed
            # a connect with "No attribute or config key found for 'gateway'" (CI, 2026-11-27)
            conn.client.set_missing_host_key_policy(guard)  # fabric's own is AutoAddPolicy
            conn.open()
        except Exception as exc:  # paramiko/socket errors vary; one line is what the user needs
            if conn is not None:
                conn.client.close()  # a refused host's transport ends here
            if kwargs.get("sock") is not None:
                kwargs["sock"].close()
            reason = _connect_reason(exc, spec)
            if not fresh:
                with self._lock:
                    self._down[ident] = reason
            raise ConnectFailed(reason) from None
        finally:
            self.timeline.append(("connect", spec.host, "", t0, time.monotonic()))
        conn.client.get_transport().set_keepalive(DEAD_PEER_SECONDS // 3)
        with self._lock:
            self._conns[ident] = conn
            self._down.pop(ident, None)
        return conn

    def exec(self, conn, command: str, *, stdin: str | bytes | Secret | None = None,
             timeout: float | None = None, label: str = "") -> Result:
        """Run one command on an open connection; returns stdout, stderr and exit code."""
        with self._lock:
            self.commands_run += 1
        t0 = time.monotonic()
        chan = self._live(conn).client.get_transport().open_session()
        try:
            chan.exec_command(command)
            if stdin is not None:
                data = stdin.reveal() if isinstance(stdin, Secret) else stdin
                chan.sendall(data if isinstance(data, bytes) else data.encode())
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            _read_all(chan, out, err, timeout)
            return Result(out.decode(errors="replace"), err.decode(errors="replace"), chan.recv_exit_status())
        finally:
            chan.close()
            self.timeline.append(("exec", conn.host, label, t0, time.monotonic()))

    def vouch(self, conn, spec: HostSpec, known_hosts: KnownHosts) -> None:
        """Record the host key of the checked connection ``conn`` under ``spec``'s port too
        (sshd.move-port: the same host on a new port), so that port is never met unknown."""
        try:
            vouch(known_hosts, self._live(conn), spec.user, spec.host, spec.port)
        except HostKeyRefused as exc:
            raise ConnectFailed(str(exc)) from None

    def _live(self, conn):
        """``conn``, or the pool's newer connection to the same login when ``conn`` was replaced
        by a fresh connect (after a group change): every holder then uses the new one."""
        transport = conn.client.get_transport()
        if transport is not None and transport.is_active():
            return conn
        with self._lock:
            newer = self._conns.get((conn.user, conn.host, conn.port))
        return newer if newer is not None else conn

    def claim_fab_call(self, task: str, hosts: tuple[str, ...]) -> bool:
        """fab calls a task once per -H host; the first call runs it for all, the rest skip."""
        with self._lock:
            ident = (task, ",".join(hosts))
            if ident in self._fab_claims:
                return False
            self._fab_claims.add(ident)
            return True

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            try:
                c.close()
            except Exception:
                pass


# After the exit status, wait this long for the channel's EOF: sshd may send the exit status
# before the last of the output; a background child that keeps stdout open must not hang us.
EOF_GRACE_SECONDS = 5.0


def _read_all(chan, out: bytearray, err: bytearray, timeout: float | None) -> None:
    """Read stdout and stderr until EOF. The exit status alone does not mean all output is in:
    OpenSSH may send it while output is still in flight (a batched fact once lost its tail)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    eof_by = None
    while True:
        if chan.recv_ready():
            out += chan.recv(65536)
            continue
        if chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            continue
        if chan.eof_received or chan.closed:
            if chan.exit_status_ready():
                return
            if chan.closed or not chan.get_transport().is_active():
                raise ConnectionError("SSH connection lost (host stopped answering)")
        elif chan.exit_status_ready():
            eof_by = eof_by or time.monotonic() + EOF_GRACE_SECONDS
            if time.monotonic() > eof_by:
                return
        if not chan.get_transport().is_active():
            raise ConnectionError("SSH connection lost (host stopped answering)")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"command did not finish within {timeout:.0f}s")
        select.select([chan], [], [], 0.1 if eof_by else 0.5)


# A host that stops answering mid-command is given up after this long: SSH keepalives are
# sent every DEAD_PEER_SECONDS/3 and TCP drops a connection whose data stays unacknowledged.
DEAD_PEER_SECONDS = 30


def _dial(spec: HostSpec, timeout: float) -> socket.socket:
    """A TCP connection to ``spec``'s sshd, tuned (:func:`_tune`) before any SSH byte is sent."""
    sock = socket.create_connection((spec.host, spec.port), timeout=timeout)
    try:
        _tune(sock)
    except OSError:
        sock.close()
        raise
    return sock


def _tune(sock: socket.socket) -> None:
    """No Nagle delay (~45 ms saved per command); detect dead peers in seconds, not minutes."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for opt, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 4),
                       ("TCP_USER_TIMEOUT", DEAD_PEER_SECONDS * 1000)):
        if hasattr(socket, opt):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)


def _connect_reason(exc: Exception, spec: HostSpec) -> str:
    if isinstance(exc, HostKeyRefused):
        return str(exc)  # already the one line: host, both fingerprints, file and line, the fix
    where = f"{spec.user}@{spec.host}:{spec.port}"
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if text in ("No existing session", "Error reading SSH protocol banner"):  # paramiko's words for it
        return f"cannot connect to {where}: no SSH answer (the port accepts TCP but sends no SSH banner; timed out)"
    if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in text.lower():
        return f"cannot connect to {where}: no answer (timed out)"
    if "Authentication" in name or "auth" in text.lower():
        return f"cannot log in to {where}: key refused ({text})"
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return f"cannot read SSH key for {where}: {text}"
    if "key" in text.lower() and ("not a valid" in text.lower() or "encrypted" in text.lower()):
        return f"SSH key for {where} is not usable: {text}"
    return f"cannot connect to {where}: {text}"


def _write_stats(pool: Pool) -> None:
    """SWARMBOOK_STATS=FILE: dump the timeline as JSON at exit (bench/ reads it)."""
    path = os.environ.get("SWARMBOOK_STATS")
    if path:
        with open(path, "w") as f:
            json.dump({"started": _STARTED, "ended": time.monotonic(), "timeline": pool.timeline}, f)


_STARTED = time.monotonic()
POOL = Pool()
atexit.register(POOL.close)
atexit.register(_write_stats, POOL)
