"""Per-lab credentials in the state dir: SSH key, CA, registry cert, htpasswd. Made once."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from . import builders, sh
from .layout import Paths


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
