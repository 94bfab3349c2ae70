"""Host keys on real lab hosts, like OpenSSH's accept-new: an unknown host is recorded on first
contact into SSH_KNOWN_HOSTS; a host whose key was swapped is refused with one line naming both
fingerprints, gets no login, no command and no secret, while the other hosts converge; with its
old key back it works again. What a host offers is read with OpenSSH's ssh-keyscan and what it
did with its journal and files (docker exec), independent of swarmbook's SSH code."""

from __future__ import annotations

import base64
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from swarmbook import knownhosts as kh
from swarmbook.lab import creds, sshkeys
from swarmbook.lab.layout import Paths

from .sb import sb

pytestmark = pytest.mark.lab

REGISTRY = "registry.lab:5000"
WRITTEN = ("/root/.docker/config.json", f"/etc/docker/certs.d/{REGISTRY}/ca.crt")  # what registry.login writes


def _exec(h, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", h.name, *argv], capture_output=True, text=True, check=check)


def _lab_fingerprint(lab, h) -> str:
    """The fingerprint of the ed25519 key the lab made for ``h`` (its state dir)."""
    pub = (Paths(lab.state_dir).host_keys(h.hostname) / "ssh_host_ed25519_key.pub").read_text()
    return kh.fingerprint(base64.b64decode(pub.split()[1]))


def _offered(h) -> str:
    """The fingerprint of the ed25519 key ``h``'s sshd presents, as OpenSSH's ssh-keyscan sees it."""
    out = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", h.addr], capture_output=True, text=True).stdout
    keys = [line.split()[2] for line in out.splitlines() if line and not line.startswith("#")]
    return kh.fingerprint(base64.b64decode(keys[0])) if keys else ""


def _wait_offering(h, fingerprint: str, tries: int = 60) -> None:
    for _ in range(tries):
        if _offered(h) == fingerprint:
            return
        time.sleep(1)
    assert _offered(h) == fingerprint, f"{h.hostname}'s sshd does not offer {fingerprint}"


# sshd's lines by their syslog identifier (sshd; sshd-session on OpenSSH 9.8+), not by unit:
# journald may not learn the unit of an sshd-session that logs and exits at once (a refused login)
SSHD_LOG = ("journalctl", "-t", "sshd", "-t", "sshd-session", "--no-pager")


def _sshd_log(h, text: str) -> int:
    """How many lines of sshd's journal on ``h`` contain ``text``."""
    log = _exec(h, *SSHD_LOG, "-o", "cat").stdout
    return sum(text in line for line in log.splitlines())


def _wait_logged(h, text: str, more_than: int, tries: int = 20) -> None:
    for _ in range(tries):
        if _sshd_log(h, text) > more_than:
            return
        time.sleep(0.5)
    log = _exec(h, *SSHD_LOG, "-o", "short-precise", "-n", "15").stdout
    assert _sshd_log(h, text) > more_than, f"{h.hostname}: sshd logged no new {text!r} line:\n{log}"


def _logged_in(h) -> bool:
    return all(_exec(h, "test", "-e", path, check=False).returncode == 0 for path in WRITTEN)


def _line_of(path: Path, addr: str, keytype: str) -> int:
    for e in kh.parse(path.read_text(), str(path)):
        if kh.names_host(e.names, addr) and e.keytype == keytype:
            return e.line
    raise AssertionError(f"no {keytype} key for {addr} in {path}")


@pytest.fixture(scope="module")
def docker_installed(lab):
    out = sb(lab, "docker.install")
    assert out.rc == 0, out.stdout + out.stderr


def test_the_labs_known_hosts_is_what_its_hosts_offer(lab):
    """OpenSSH itself, strict, trusts every lab host from the lab's file alone."""
    for h in lab.hosts:
        p = subprocess.run(["ssh", "-i", str(lab.key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                            "-o", "ConnectTimeout=5", f"root@{h.addr}", "hostname"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout.strip() == h.hostname, p.stderr
        assert _offered(h) == _lab_fingerprint(lab, h)
    assert f"SSH_KNOWN_HOSTS={lab.known_hosts}" in lab.hosts_env.read_text().splitlines()


def test_an_unknown_host_is_recorded_on_first_contact_into_ssh_known_hosts(lab, tmp_path):
    known = tmp_path / "sb" / "known_hosts"
    user_file = Path.home() / ".ssh" / "known_hosts"
    user_before = user_file.read_bytes() if user_file.exists() else None
    first, second = lab.hosts[0], lab.hosts[1]
    hosts = f"{first.addr},{second.addr}"
    env = {"SWARMBOOK_ENV": "", "SSH_KNOWN_HOSTS": str(known)}  # fab -H, no hosts file
    out = sb(lab, "-i", str(lab.key), "-H", hosts, "docker.install", "--check", tool="fab", env=env)
    assert out.rc == 0 and not out.failed, out.stdout + out.stderr
    entries = kh.parse(known.read_text(), str(known))
    assert sorted(e.names for e in entries) == [(first.addr,), (second.addr,)]
    for e in entries:
        h = first if e.names == (first.addr,) else second
        assert kh.fingerprint(e.blob) == _lab_fingerprint(lab, h)  # the key the lab gave that host
    assert stat.S_IMODE(known.stat().st_mode) == 0o600 and stat.S_IMODE(known.parent.stat().st_mode) == 0o700
    recorded = known.read_bytes()
    again = sb(lab, "-i", str(lab.key), "-H", hosts, "docker.install", "--check", tool="fab", env=env)
    assert again.rc == 0 and known.read_bytes() == recorded  # known now: nothing recorded twice
    assert (user_file.read_bytes() if user_file.exists() else None) == user_before  # ~/.ssh untouched


def _restart_sshd(h) -> None:
    """Restart sshd, clearing systemd's start rate limit first (a swap and a restore in a row)."""
    _exec(h, "systemctl", "reset-failed", "ssh", check=False)
    _exec(h, "systemctl", "restart", "ssh")


def _swap_key(h) -> str:
    """Give ``h`` new host keys (as a reinstalled host, or an impostor, would have)."""
    _exec(h, "find", "/etc/ssh", "-name", "ssh_host_*", "-delete")
    _exec(h, "ssh-keygen", "-A")
    _restart_sshd(h)
    new = kh.fingerprint(base64.b64decode(_exec(h, "cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1]))
    _wait_offering(h, new)
    return new


def _restore_key(lab, h) -> None:
    """Put the lab's keys for ``h`` back, as lab.up puts them into a new container."""
    p = Paths(lab.state_dir)
    tar = sshkeys.keys_tar(creds.host_key_files(p, h.hostname))
    subprocess.run(["docker", "cp", "-", f"{h.name}:/etc/ssh"], input=tar, capture_output=True, check=True)
    _restart_sshd(h)
    _wait_offering(h, _lab_fingerprint(lab, h))


def test_a_swapped_host_key_is_refused_nothing_reaches_that_host_and_the_old_key_works_again(lab, docker_installed):
    victim, others = lab.hosts[-1], lab.hosts[:-1]
    for h in lab.hosts:  # every host has a login to make
        _exec(h, "rm", "-f", *WRITTEN)
    password = (lab.state_dir / "registry.password").read_text().strip()
    recorded = _lab_fingerprint(lab, victim)
    line = _line_of(lab.known_hosts, victim.addr, "ssh-ed25519")
    offered = _swap_key(victim)
    assert offered != recorded
    logins, preauth = _sshd_log(victim, "Accepted publickey"), _sshd_log(victim, "[preauth]")
    try:
        out = sb(lab, "registry.login")
        assert out.rc == 1, out.stdout + out.stderr
        (fail,) = out.failed
        assert (fail["host"], fail["step"]) == (victim.addr, "connect")
        reason = fail["reason"]
        assert "\n" not in reason
        assert reason.startswith(f"host key of root@{victim.addr}:22 has changed: ")
        assert f"offered ssh-ed25519 {offered}, recorded ssh-ed25519 {recorded} in {lab.known_hosts} line {line}" in reason
        assert f"run again: ssh-keygen -R {victim.addr} -f {lab.known_hosts}" in reason
        assert out.stdout.count(offered) == 1  # one line, once
        # nothing reached the refused host: sshd saw the connection end before authentication,
        # no login was accepted, the files registry.login writes are absent, the password is nowhere
        _wait_logged(victim, "[preauth]", more_than=preauth)  # journald may lag sshd a little
        assert _sshd_log(victim, "Accepted publickey") == logins
        assert not any(_exec(victim, "test", "-e", path, check=False).returncode == 0 for path in WRITTEN)
        assert _exec(victim, "grep", "-rqF", password, "/root", "/etc/docker", check=False).returncode == 1
        for h in others:  # the others converged
            assert [e["status"] for e in out.steps(host=h.addr) if e["step"] == f"login {REGISTRY} as root"] == [
                "changed"], out.stdout
            assert _logged_in(h)
    finally:
        _restore_key(lab, victim)

    again = sb(lab, "registry.login")
    assert again.rc == 0 and not again.failed, again.stdout + again.stderr
    assert [e["status"] for e in again.steps(host=victim.addr) if e["step"].startswith("login ")] == ["changed"]
    assert all(e["status"] == "ok" for h in others for e in again.steps(host=h.addr))
    assert _logged_in(victim) and _sshd_log(victim, "Accepted publickey") > logins


def test_sshd_move_port_records_the_proven_key_under_the_new_port(lab, tmp_path):
    """Same host, same key, new name: sshd.move-port records [host]:port from the connection it
    already checked on 22, so the new port is never met as an unknown host. The known_hosts here
    holds the host's port-22 entries only (the lab's own file names 2222 in advance)."""
    h = lab.hosts[-1]
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"{h.addr} {pub}\n" for pub in _lab_pubs(lab, h)))
    env = {"SSH_KNOWN_HOSTS": str(known)}
    hosts = tmp_path / "hosts.env"
    hosts.write_text(re.sub(r"(?m)^GITLAB=.*$", f"GITLAB={h.addr}", lab.hosts_env.read_text()))
    hosts.chmod(0o600)
    try:
        out = sb(lab, "sshd.move-port", "--port", "2200", hosts_env=str(hosts), env=env)
        assert out.rc == 0, out.stdout + out.stderr
        moved = [e for e in kh.parse(known.read_text(), str(known)) if e.names == (f"[{h.addr}]:2200",)]
        assert [kh.fingerprint(e.blob) for e in moved] == [_lab_fingerprint(lab, h)]
    finally:
        back = sb(lab, "sshd.move-port", "--port", "22", hosts_env=str(hosts), env=env)
        assert back.rc == 0, back.stdout + back.stderr
    mine = [e.names for e in kh.parse(known.read_text(), str(known)) if h.addr in e.names[0]]
    assert mine == [(h.addr,)] * 3 + [(f"[{h.addr}]:2200",)]  # moving back to 22 recorded nothing


def _lab_pubs(lab, h) -> list[str]:
    folder = Paths(lab.state_dir).host_keys(h.hostname)
    return [" ".join((folder / f"{sshkeys.key_file(t)}.pub").read_text().split()[:2]) for t in sshkeys.KEY_TYPES]
