"""sshd.move-port on a real lab host: both ports, verified login, old port dropped; rollback when
the new port is blocked. Uses its own copy of the hosts file (GITLAB = the last lab host) and
moves sshd back to 22 afterwards so the other lab tests are unaffected."""

import os
import re

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


@pytest.fixture
def hosts_file(lab, tmp_path):
    target = lab.hosts[-1]
    text = re.sub(r"(?m)^GITLAB=.*$", f"GITLAB={target.addr}", lab.hosts_env.read_text())
    path = tmp_path / "hosts.env"
    path.write_text(text)
    os.chmod(path, 0o600)
    yield path, target
    if f"{target.addr}:2222" in path.read_text():  # put sshd back on 22 whatever happened
        sb(lab, "sshd.move-port", "--port", "22", hosts_env=str(path))


def _login(lab, host, port):
    return ssh(lab, host.addr, "true", check=False, port=port).returncode == 0


def test_move_to_2222_verified_then_nothing_to_do_then_back(lab, hosts_file):
    path, h = hosts_file
    out = sb(lab, "sshd.move-port", hosts_env=str(path))
    assert out.rc == 0, out.stdout + out.stderr
    assert f"GITLAB={h.addr}:2222" in path.read_text()
    assert _login(lab, h, 2222) and not _login(lab, h, 22)
    assert ssh(lab, h.addr, "grep -c '^Port ' /etc/ssh/sshd_config", port=2222).stdout.strip() == "1"
    again = sb(lab, "sshd.move-port", hosts_env=str(path))
    assert again.rc == 0 and again.changed == 0, again.stdout
    back = sb(lab, "sshd.move-port", "--port", "22", hosts_env=str(path))
    assert back.rc == 0, back.stdout + back.stderr
    assert _login(lab, h, 22) and not _login(lab, h, 2222)


def test_blocked_new_port_rolls_back_and_22_still_works(lab, hosts_file):
    path, h = hosts_file
    # use up most of systemd's start limit (5 in 10 s): the move's restart and the rollback's
    # restart must still bring sshd back (one CI run lost sshd on h3 exactly this way)
    ssh(lab, h, "for i in 1 2 3 4; do systemctl restart ssh; done")
    ssh(lab, h, "iptables -I INPUT -p tcp --dport 2222 -j DROP")
    try:
        out = sb(lab, "sshd.move-port", hosts_env=str(path), json_lines=False)
    finally:
        ssh(lab, h, "iptables -D INPUT -p tcp --dport 2222 -j DROP")
    assert out.rc == 1
    assert "rolled back" in out.stdout or "restored" in out.stdout, out.stdout
    assert "port 22 answers" in out.stdout
    assert _login(lab, h, 22)
    cfg = ssh(lab, h, "grep '^Port ' /etc/ssh/sshd_config || echo 'Port 22 (default)'").stdout
    assert "2222" not in cfg
    assert f"{h.addr}:2222" not in path.read_text()
