"""Host key checking like OpenSSH's ``StrictHostKeyChecking accept-new``, during the handshake.

Read: the file SSH_KNOWN_HOSTS names (where new keys are recorded), the user's
``~/.ssh/known_hosts`` and the system's ``/etc/ssh/ssh_known_hosts``. A host whose key is on
record in any of them goes on; an unknown host has its key recorded (accept-new); a host that
offers another key is refused with one line (:func:`knownhosts.refusal`). The check runs in
paramiko's handshake, right after the key exchange and before authentication: a refused host
gets no login, no channel, no command and no secret.

Recording takes one lock, ``flock`` on the file itself (it excludes other threads of this
process and other swarmbook processes alike), re-reads the file under it, and appends the
line with a single ``O_APPEND`` write; a file made here is mode 0600 (its folder 0700).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import knownhosts
from .knownhosts import Entry

DEFAULT_FILE = "~/.ssh/known_hosts"  # OpenSSH's UserKnownHostsFile: one trust store with ssh
SYSTEM_FILE = "/etc/ssh/ssh_known_hosts"  # OpenSSH's GlobalKnownHostsFile (read only)


class HostKeyRefused(Exception):
    """The host's key is not the one on record (or could not be recorded): one line."""


@dataclass(frozen=True)
class KnownHosts:
    """Which known_hosts files a run trusts, and which one it records new keys into."""

    record_to: Path
    read_also: tuple[Path, ...] = ()

    @classmethod
    def for_file(cls, path: str = "") -> "KnownHosts":
        """Record into ``path`` (SSH_KNOWN_HOSTS; empty: ~/.ssh/known_hosts); also trust the
        user's and the system's known_hosts, as ssh does."""
        record = Path(path or DEFAULT_FILE).expanduser()
        return cls(record, (Path(DEFAULT_FILE).expanduser(), Path(SYSTEM_FILE)))

    def files(self) -> list[Path]:
        return list(dict.fromkeys([self.record_to, *self.read_also]))

    def entries(self) -> list[Entry]:
        """Every key line of every file (a missing or unreadable file has none)."""
        out: list[Entry] = []
        for path in self.files():
            out += _read(path)
        return out

    def entries_for(self, name: str) -> list[Entry]:
        """The entries that name ``name`` (its hashed ones included): one pass over the files."""
        return [e for e in self.entries() if knownhosts.names_host(e.names, name)]

    def verify(self, where: str, name: str, keytype: str, blob: bytes, entries: list[Entry] | None = None) -> str:
        """KNOWN or NEW (then recorded); raises HostKeyRefused for a changed or revoked key."""
        entries = self.entries() if entries is None else entries
        verdict = knownhosts.judge(entries, name, keytype, blob)
        if verdict.kind == knownhosts.NEW:
            verdict = self.record(name, keytype, blob, others=[e for e in entries if e.path != str(self.record_to)])
        if verdict.kind in (knownhosts.CHANGED, knownhosts.REVOKED):
            raise HostKeyRefused(knownhosts.refusal(where, name, keytype, blob, verdict))
        return verdict.kind

    def record(self, name: str, keytype: str, blob: bytes, *, others: list[Entry] = ()) -> knownhosts.Verdict:
        """Append ``name``'s key unless the file has one for it by now (another thread or run
        may have recorded it meanwhile: that entry decides). NEW when this call wrote it."""
        try:
            with _locked(self.record_to) as fd:
                text = _read_fd(fd)
                mine = knownhosts.parse(text, str(self.record_to))
                verdict = knownhosts.judge([*mine, *others], name, keytype, blob)
                if verdict.kind != knownhosts.NEW:
                    return verdict
                line = knownhosts.entry_line(name, keytype, blob, hashed=any(e.hashed for e in mine))
                os.write(fd, (("\n" if text and not text.endswith("\n") else "") + line).encode())
                os.fsync(fd)
        except OSError as exc:
            raise HostKeyRefused(f"cannot record the host key of {name} in {self.record_to}: "
                                 f"{exc.strerror or exc}; refused (set SSH_KNOWN_HOSTS to a writable file)") from None
        return verdict


def _read(path: Path) -> list[Entry]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return knownhosts.parse(text, str(path))


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    """The file open for appending (made 0600, its folder 0700, when missing), under flock."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


class Guard:
    """One connect's host key check, handed to paramiko: ``transport`` (SSHClient.connect's
    transport_factory) asks for the recorded key types first, ``missing_host_key`` (the
    client's MissingHostKeyPolicy, called for every key since the client itself holds none)
    judges the key the host proved it holds during the key exchange."""

    def __init__(self, known: KnownHosts, user: str, host: str, port: int):
        self.known = known
        self.where = f"{user}@{host}:{port}"
        self.name = knownhosts.host_name(host, port)
        self.entries = known.entries_for(self.name)  # hashed names cost an HMAC each: match once
        self.outcome = ""  # KNOWN or NEW once checked

    def transport(self, sock: Any, **kwargs: Any):
        from paramiko import Transport

        t = Transport(sock, **kwargs)
        opts = t.get_security_options()
        opts.key_types = knownhosts.prefer(opts.key_types, knownhosts.recorded_types(self.entries, self.name))
        return t

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.outcome = self.known.verify(self.where, self.name, key.get_name(), key.asbytes(), self.entries)


def vouch(known: KnownHosts, conn: Any, user: str, host: str, port: int) -> str:
    """Record the key of the checked connection ``conn`` under ``host``:``port`` as well (sshd
    moved to a new port: same key, new name), so the new port is never met as an unknown."""
    transport = conn.client.get_transport()
    if transport is None:  # closed meanwhile: the connect to the new port checks on its own
        return ""
    key = transport.get_remote_server_key()
    name = knownhosts.host_name(host, port)
    return known.verify(f"{user}@{host}:{port}", name, key.get_name(), key.asbytes())
