"""Backup files on this machine, the same way for every part (Portainer, MySQL, ...): a
timestamped name, the data, and a ``.sha256`` file beside it that ``sha256sum -c`` reads; never
overwritten; read back for a restore only when the checksum matches (else one line, before any
host is touched)."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

from .errors import ConfigError


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sidecar_text(digest: str, filename: str) -> str:
    """The .sha256 file next to a backup (`sha256sum -c` reads it)."""
    return f"{digest}  {filename}\n"


def parse_sidecar(text: str) -> str:
    m = re.match(r"^([0-9a-f]{64})\s", text.strip() + " ")
    return m.group(1) if m else ""


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def name(part: str, host: str, when: str, ext: str) -> str:
    """``part-host-20260101T000000Z.ext`` (the host made safe for a file name)."""
    return f"{part}-{re.sub(r'[^A-Za-z0-9.-]', '_', host)}-{when}.{ext}"


def folder_problem(to: str | None, option: str = "--to") -> str:
    """Why ``to`` cannot take a backup ('' when it can): checked before any host is touched."""
    if not to:
        return f"{option} FOLDER is missing (a folder on this machine)"
    if not Path(to).is_dir():
        return f"{option} {to} is not a folder"
    if not os.access(to, os.W_OK | os.X_OK):
        return f"{option} {to} is not writable"
    return ""


def write(folder: str | Path, filename: str, data: bytes) -> tuple[Path, str]:
    """Write ``data`` and its .sha256 beside it; FileExistsError rather than overwrite. The file
    is 0600 from its first byte, whatever the umask: every backup holds secrets (a dump's
    password hashes, Kong's credentials, Portainer's users and keys, the swarm's CA and node keys
    with the raft key that decrypts every swarm secret, GitLab's secrets file)."""
    path, side = Path(folder) / filename, Path(folder) / (filename + ".sha256")
    if side.exists():
        raise FileExistsError(str(side))
    digest = sha256(data)
    # O_EXCL: fail rather than overwrite, even in a race
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    with open(side, "x") as fh:
        fh.write(sidecar_text(digest, filename))
    return path, digest


def read_checked(file: str | None, task: str) -> bytes:
    """The backup's bytes when its .sha256 matches; ConfigError (one line) otherwise."""
    if not file:
        raise ConfigError(f"{task} needs the backup FILE")
    path, side = Path(file), Path(file + ".sha256")
    if not path.is_file():
        raise ConfigError(f"backup {file} not found")
    if not side.is_file():
        raise ConfigError(f"{side} not found: a backup without its checksum is not restored")
    data = path.read_bytes()
    want = parse_sidecar(side.read_text())
    if not want:
        raise ConfigError(f"{side} does not hold a sha256")
    if sha256(data) != want:
        raise ConfigError(f"{file} is corrupted: sha256 {sha256(data)[:12]}... != {want[:12]}... in {side.name}; "
                          "nothing was touched")
    return data


def read_sql(file: str | None, task: str, problem_of) -> bytes:
    """The SQL of a checked ``.sql.gz`` backup (mysql.backup, kong.backup) whose dump is whole by
    ``problem_of(sql)`` ('' when it is); ConfigError (one line) otherwise."""
    import gzip

    data = read_checked(file, task)
    try:
        sql = gzip.decompress(data)
    except (OSError, EOFError):
        raise ConfigError(f"{file} is not gzip: not a {task.split('.')[0]}.backup file; nothing was touched") from None
    problem = problem_of(sql)
    if problem:
        raise ConfigError(f"{file} is not a whole dump: {problem}; nothing was touched")
    return sql


def write_private(path: str | Path, text: str) -> None:
    """A secret beside a backup (the swarm's unlock key): 0600 from its first byte, never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


# --- bringing a file from a host --------------------------------------------------------------

def fetch_cmd(producer: str) -> str:
    """Run ``producer`` (a built command writing the backup to stdout) into a temporary file
    (0600, mktemp's) on the host, then print its sha256 and the file as base64, one line each;
    the producer's exit code is kept and the file removed whatever happened."""
    return (f'f=$(mktemp) && ( {producer} ) > "$f" && sha256sum "$f" | cut -d" " -f1 && base64 -w0 "$f" && echo; '
            'rc=$?; rm -f "$f"; exit $rc')


def received(stdout: str) -> tuple[bytes, str]:
    """(data, problem) from what :func:`fetch_cmd` printed; problem is '' when the sha256 computed
    on the host matches the bytes that arrived here."""
    import base64
    import binascii

    lines = stdout.split("\n")
    remote = lines[0].strip()
    try:
        data = base64.b64decode(lines[1].strip() if len(lines) > 1 else "", validate=True)
    except (ValueError, binascii.Error):
        return b"", "the file did not arrive whole (not base64)"
    if sha256(data) != remote:
        return data, f"transfer corrupted: sha256 {sha256(data)[:12]} here, {remote[:12] or 'none'} on the host"
    return data, ""


# --- backup.all: one dated folder per run, a manifest, retention --------------------------------

MANIFEST = "manifest.json"
_DATED = re.compile(r"^\d{8}T\d{6}Z$")  # a folder named by stamp()


def make_dated(to: str | Path, when: str) -> Path:
    """``to/WHEN``, new and 0700 (it will hold secrets: GitLab's, the swarm's unlock key)."""
    path = Path(to) / when
    path.mkdir(mode=0o700)  # FileExistsError: never two runs into one folder
    return path


def listing(folder: str | Path) -> set[str]:
    return {p.name for p in Path(folder).iterdir()}


def new_files(folder: str | Path, before: set[str]) -> list[dict]:
    """The backups written into ``folder`` since ``before`` (its listing then): name, size and the
    sha256 their sidecar records (sidecars and unlock keys are part of their backup, not listed)."""
    out = []
    for name in sorted(listing(folder) - before):
        path = Path(folder) / name
        side = Path(folder) / (name + ".sha256")
        if name.endswith(".sha256") or not side.is_file():
            continue
        out.append({"file": name, "size": path.stat().st_size, "sha256": parse_sidecar(side.read_text())})
    return out


def manifest_bytes(created: str, parts: list[dict]) -> bytes:
    import json

    return (json.dumps({"created": created, "parts": parts}, indent=1, sort_keys=True) + "\n").encode()


def ours(path: Path) -> bool:
    """A folder backup.all made: named by stamp() and holding a manifest."""
    return path.is_dir() and not path.is_symlink() and bool(_DATED.match(path.name)) and (path / MANIFEST).is_file()


def beyond_keep(to: str | Path, keep: int) -> list[Path]:
    """backup.all's folders in ``to`` older than the newest ``keep`` (anything else is never listed)."""
    mine = sorted((p for p in Path(to).iterdir() if ours(p)), key=lambda p: p.name)
    return mine[:-keep] if keep > 0 else []
