"""Pure builders for the lab hosts' SSH host keys: ssh-keygen argv, the tar stream that puts a
host's keys into its container, and the lab's known_hosts text. Nothing here runs or writes.

Each host's keys are made once in the state dir (``hostkeys/hI/``) and put into every new
container of that host before it starts, so a host keeps its identity across down/up and the
lab's ``known_hosts`` (which its hosts.env names as SSH_KNOWN_HOSTS) stays true.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from swarmbook import knownhosts

from .layout import LabHost

KEY_TYPES = ("ed25519", "ecdsa", "rsa")  # what `ssh-keygen -A` makes on a Debian host
HEADER = "# swarmbook lab host keys, written by `inv lab.up` (SSH_KNOWN_HOSTS of the lab's hosts.env)"


def key_file(keytype: str) -> str:
    """The private key's name in /etc/ssh (the public one adds .pub)."""
    return f"ssh_host_{keytype}_key"


def keygen_argv(path: Path, keytype: str, comment: str) -> list[str]:
    return ["ssh-keygen", "-q", "-t", keytype, "-N", "", "-C", comment, "-f", str(path)]


def keys_tar(files: Mapping[str, bytes], mtime: int = 0) -> bytes:
    """A tar stream for `docker cp - CONTAINER:/etc/ssh`: private keys 0600, public keys 0644,
    owned by root, file entries only (the folder's own mode and owner stay as they are)."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mode = len(data), 0, 0, 0o644 if name.endswith(".pub") else 0o600
            info.uname = info.gname = "root"
            info.mtime = mtime
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ssh_ports(hs: Sequence[LabHost], recorded: Mapping[str, int]) -> dict[str, list[int]]:
    """Ports besides 22 each host's key is recorded for: the one sshd.move-port moves to by
    default (SSHD_PORT) and any port the hosts file records."""
    from swarmbook.config import KEYS

    moved = int(KEYS["SSHD_PORT"].default)
    return {h.addr: sorted({moved, recorded.get(h.addr, 22)} - {22}) for h in hs}


def host_lines(addr: str, pubkeys: Sequence[str], ports: Sequence[int]) -> list[str]:
    """One known_hosts line per key of the host at ``addr``, naming it on every port given."""
    names = ",".join(dict.fromkeys(knownhosts.host_name(addr, p) for p in (22, *ports)))
    return [f"{names} {' '.join(pub.split()[:2])}" for pub in pubkeys]


def known_hosts_text(old: str, hosts: Mapping[str, Sequence[str]], ports: Mapping[str, Sequence[int]]) -> str:
    """The lab's known_hosts: a line per key of every host (``hosts``: addr -> its .pub
    lines; ``ports``: addr -> ports besides 22 it may answer on), then the lines of ``old``
    worth keeping: what swarmbook recorded meanwhile, except entries that name a lab host with
    a key it no longer has. Idempotent: the result given as ``old`` gives itself again."""
    ours = [line for addr, pubs in hosts.items() for line in host_lines(addr, pubs, ports.get(addr, ()))]
    blobs = {addr: {knownhosts.parse(line, "")[0].blob for line in host_lines(addr, pubs, ())}
             for addr, pubs in hosts.items()}
    keep = []
    for line in old.splitlines():
        if line == HEADER or line in ours or not line.strip():
            continue
        entry = next(iter(knownhosts.parse(line, "")), None)
        if entry is not None and any(
                entry.blob not in blobs[addr] and _names_addr(entry, addr) for addr in hosts):
            continue  # a lab host's old key (another state dir, or keys made anew)
        keep.append(line)
    return "\n".join([HEADER, *ours, *keep]) + "\n"


def _names_addr(entry: knownhosts.Entry, addr: str) -> bool:
    """Whether an entry names ``addr`` on port 22 or on a port it spells out."""
    if knownhosts.names_host(entry.names, addr):
        return True
    return any(n.startswith(f"[{addr}]:") for n in entry.names)
