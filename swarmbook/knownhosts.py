"""OpenSSH known_hosts, pure: parse entries, match a host, judge an offered key, format a new
entry and the one-line refusal. Nothing here reads a file or opens a socket (hostkeys.py does).

The rules are OpenSSH's (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): a host on port 22 is named
``host``, on any other port ``[host]:port``; a name field is a comma list of patterns (``*``,
``?``, ``!negation``) or one hashed name ``|1|salt|hmac``; ``@revoked`` marks a key never to
accept; ``@cert-authority`` lines (host certificates) are not used here. A key is trusted when
any entry for the host, in any file read, holds exactly that key (as OpenSSH decides).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .shell import join

KNOWN, NEW, CHANGED, REVOKED = "known", "new", "changed", "revoked"


@dataclass(frozen=True)
class Entry:
    """One key line of a known_hosts file."""

    path: str
    line: int
    names: tuple[str, ...]  # patterns, or one |1|salt|hmac hashed name
    keytype: str  # e.g. ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa
    blob: bytes  # the public key as sent on the wire
    marker: str = ""  # "", "@revoked" or "@cert-authority"

    @property
    def hashed(self) -> bool:
        return any(n.startswith("|1|") for n in self.names)


@dataclass(frozen=True)
class Verdict:
    kind: str  # KNOWN, NEW, CHANGED or REVOKED
    entry: Entry | None = None  # the entry that decided (CHANGED: the recorded key shown)
    stale: tuple[Entry, ...] = ()  # CHANGED: every entry for the host (all hold another key)


def host_name(host: str, port: int) -> str:
    """The name OpenSSH records: ``host`` on port 22, ``[host]:port`` on any other."""
    return host if port == 22 else f"[{host}]:{port}"


def parse(text: str, path: str) -> list[Entry]:
    """Key lines of a known_hosts file; comments, blank lines and unreadable lines are skipped."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3:
            continue
        names, keytype, data = fields[:3]
        try:
            blob = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            continue
        entries.append(Entry(path, number, tuple(names.split(",")), keytype, blob, marker))
    return entries


def _glob(pattern: str, name: str) -> bool:
    """OpenSSH's host pattern: ``*`` and ``?`` are wildcards, everything else literal (``[``
    too: ``[host]:2222`` names a port), compared without case."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, name, re.IGNORECASE | re.DOTALL) is not None


def _hashed_is(field: str, name: str) -> bool:
    parts = field.split("|")
    if len(parts) != 4:
        return False
    try:
        salt, digest = base64.b64decode(parts[2]), base64.b64decode(parts[3])
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)


def names_host(names: Sequence[str], name: str) -> bool:
    """Whether a name field covers ``name`` (a negated pattern that matches wins: no)."""
    hit = False
    for field in names:
        if field.startswith("|1|"):
            hit = hit or _hashed_is(field, name)
        elif field.startswith("!"):
            if _glob(field[1:], name):
                return False
        elif _glob(field, name):
            hit = True
    return hit


def judge(entries: Iterable[Entry], name: str, keytype: str, blob: bytes) -> Verdict:
    """KNOWN when an entry for ``name`` holds this key, REVOKED when a @revoked one does, NEW
    when no entry names the host, CHANGED when entries name it and none holds this key (a key
    of another type counts too: the transport asked for the recorded types first)."""
    mine = [e for e in entries if names_host(e.names, name)]
    for e in mine:
        if e.marker == "@revoked" and e.blob == blob:
            return Verdict(REVOKED, e)
    plain = [e for e in mine if not e.marker]
    for e in plain:
        if e.blob == blob:
            return Verdict(KNOWN, e)
    if not plain:
        return Verdict(NEW)
    shown = next((e for e in plain if e.keytype == keytype), plain[0])
    return Verdict(CHANGED, shown, tuple(plain))


def recorded_types(entries: Iterable[Entry], name: str) -> list[str]:
    """Key types recorded for ``name``, first seen first (the transport asks for these first)."""
    types: list[str] = []
    for e in entries:
        if not e.marker and e.keytype not in types and names_host(e.names, name):
            types.append(e.keytype)
    return types


# paramiko names RSA host key algorithms by signature (rsa-sha2-*); the key itself is ssh-rsa
_ALGORITHMS = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}


def prefer(offered: Sequence[str], recorded: Sequence[str]) -> list[str]:
    """Host key algorithms in the order to ask for: the recorded types first (so a host with
    several keys presents the one on record, as OpenSSH orders them), then the rest as given."""
    wanted = [a for t in recorded for a in _ALGORITHMS.get(t, (t,)) if a in offered]
    return list(dict.fromkeys(wanted)) + [a for a in offered if a not in wanted]


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` as ssh-keygen -l and ssh print it (base64, no padding)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def hash_name(name: str, salt: bytes | None = None) -> str:
    """OpenSSH's hashed form ``|1|salt|hmac`` (HashKnownHosts yes)."""
    salt = os.urandom(20) if salt is None else salt
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def entry_line(name: str, keytype: str, blob: bytes, *, hashed: bool = False, salt: bytes | None = None) -> str:
    """One known_hosts line for ``name`` (hashed like the file's other entries when asked)."""
    field = hash_name(name, salt) if hashed else name
    return f"{field} {keytype} {base64.b64encode(blob).decode()}\n"


def refusal(where: str, name: str, keytype: str, blob: bytes, verdict: Verdict) -> str:
    """The one line that refuses a host whose key is not the one on record."""
    e = verdict.entry
    assert e is not None and verdict.kind in (CHANGED, REVOKED)
    offered = f"{keytype} {fingerprint(blob)}"
    if verdict.kind == REVOKED:
        return (f"host key of {where} is revoked: {offered} is marked @revoked in {e.path} line {e.line}; "
                "refused, nothing sent")
    files = list(dict.fromkeys(s.path for s in verdict.stale))
    fix = "; ".join(join(["ssh-keygen", "-R", name, "-f", f]) for f in files)
    return (f"host key of {where} has changed: offered {offered}, recorded {e.keytype} {fingerprint(e.blob)} "
            f"in {e.path} line {e.line}; refused, nothing sent. If the host's key changed legitimately "
            f"(reinstalled), remove the old key and run again: {fix}")
