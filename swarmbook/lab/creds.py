"""Per-lab credentials in the state dir: SSH key, CA, registry cert, htpasswd. Made once."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from . import builders, sh, sshkeys
from .layout import LabHost, Paths


def ensure_state_dir(p: Paths) -> bool:
    created = not p.state.exists()
    p.state.mkdir(parents=True, exist_ok=True)
    os.chmod(p.state, 0o700)
    ignore = p.state / ".gitignore"  # keys and passwords must never be committed
    if not ignore.exists():
        ignore.write_text("*\n")
    return created


def write_private(path: Path, text: str) -> bool:
    """Write text with mode 0600 unless the file already holds exactly that. True if written."""
    if path.exists() and path.read_text() == text:
        os.chmod(path, 0o600)
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def ensure_ssh_key(p: Paths) -> bool:
    if p.key.exists() and p.pubkey.exists():
        return False
    p.key.unlink(missing_ok=True)
    p.pubkey.unlink(missing_ok=True)
    sh.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "swarmbook-lab", "-f", str(p.key)])
    os.chmod(p.key, 0o600)
    return True


def ensure_host_keys(p: Paths, hs: list[LabHost]) -> list[str]:
    """Each host's SSH host keys (ed25519, ecdsa, rsa) in the state dir, made once; returns the
    hostnames whose keys were made now (a container of theirs that exists needs them put in)."""
    made = []
    for h in hs:
        folder = p.host_keys(h.hostname)
        missing = [t for t in sshkeys.KEY_TYPES if not (folder / sshkeys.key_file(t)).exists()
                   or not (folder / (sshkeys.key_file(t) + ".pub")).exists()]
        if not missing:
            continue
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for t in missing:
            key = folder / sshkeys.key_file(t)
            key.unlink(missing_ok=True)
            key.with_name(key.name + ".pub").unlink(missing_ok=True)
            sh.run(sshkeys.keygen_argv(key, t, f"root@{h.hostname}"))
            os.chmod(key, 0o600)
        made.append(h.hostname)
    return made


def host_key_files(p: Paths, hostname: str) -> dict[str, bytes]:
    """/etc/ssh file name -> content of one host's keys."""
    folder = p.host_keys(hostname)
    names = [n for t in sshkeys.KEY_TYPES for n in (sshkeys.key_file(t), sshkeys.key_file(t) + ".pub")]
    return {n: (folder / n).read_bytes() for n in names}


def write_known_hosts(p: Paths, hs: list[LabHost], ports: dict[str, list[int]]) -> bool:
    """The lab's known_hosts (0600) from the hosts' public keys; True when written."""
    pubs = {h.addr: [(p.host_keys(h.hostname) / (sshkeys.key_file(t) + ".pub")).read_text().strip()
                     for t in sshkeys.KEY_TYPES] for h in hs}
    old = p.known_hosts.read_text() if p.known_hosts.exists() else ""
    return write_private(p.known_hosts, sshkeys.known_hosts_text(old, pubs, ports))


def ensure_ca_and_cert(p: Paths) -> list[str]:
    done = []
    if not (p.ca.exists() and p.ca_key.exists()):
        sh.run(builders.ca_argv(p.ca, p.ca_key))
        os.chmod(p.ca_key, 0o600)
        os.chmod(p.ca, 0o644)
        p.cert.unlink(missing_ok=True)  # a new CA invalidates the old server cert
        done.append("lab CA")
    if not (p.cert.exists() and p.cert_key.exists()):
        csr = p.state / "registry.csr"
        ext = p.state / "registry.ext"
        ext.write_text(builders.server_ext_text())
        sh.run(builders.csr_argv(p.cert_key, csr))
        sh.run(builders.sign_argv(csr, p.ca, p.ca_key, ext, p.cert))
        os.chmod(p.cert_key, 0o600)
        csr.unlink()
        ext.unlink()
        (p.state / "ca.srl").unlink(missing_ok=True)
        done.append("registry certificate")
    return done


def ensure_password(p: Paths) -> tuple[str, bool]:
    """The registry password (random, made once) and whether it was made now."""
    if p.password.exists():
        pw = p.password.read_text().strip()
        if pw:
            return pw, False
    pw = secrets.token_urlsafe(24)
    write_private(p.password, pw + "\n")
    return pw, True


def ensure_htpasswd(p: Paths, user: str, password: str) -> bool:
    """bcrypt htpasswd line (the registry accepts bcrypt only); password goes via stdin."""
    if p.htpasswd.exists():
        check = sh.run(["htpasswd", "-i", "-v", str(p.htpasswd), user], input=password + "\n",
                       check=False)
        if check.returncode == 0:
            return False
    line = sh.run(["htpasswd", "-i", "-n", "-B", user], input=password + "\n").stdout.strip()
    write_private(p.htpasswd, line + "\n")
    return True
