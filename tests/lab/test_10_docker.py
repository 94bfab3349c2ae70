"""docker.install / docker.mirrors on real lab hosts (systemd, nested dockerd), via inv and fab."""

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def test_install_on_every_host_in_parallel_then_nothing_to_do(lab):
    fresh = [h.addr for h in lab.hosts if ssh(lab, h, "command -v dockerd", check=False).returncode != 0]
    first = sb(lab, "docker.install")
    assert first.rc == 0, first.stdout + first.stderr
    for addr in fresh:  # hosts without Docker before: something was installed there
        assert first.recap()[addr]["changed"] >= 1
    for h in lab.hosts:
        out = ssh(lab, h, "docker info --format '{{.ServerVersion}} {{.Driver}}'").stdout
        assert out.split()[1] == "overlay2", out
    second = sb(lab, "docker.install")
    assert second.rc == 0 and second.changed == 0, second.stdout
    assert set(second.recap()) == {h.addr for h in lab.hosts}


def test_mirrors_land_in_docker_info_and_serve_pulls(lab):
    first = sb(lab, "docker.mirrors")
    assert first.rc == 0, first.stdout + first.stderr
    for h in lab.hosts:
        mirrors = ssh(lab, h, "docker info --format '{{json .RegistryConfig.Mirrors}}'").stdout
        assert "https://registry.lab:5001/" in mirrors
    # Docker Hub is unreachable here: a pull of a library image can only come through the mirror.
    ssh(lab, lab.hosts[0], "docker pull -q busybox:latest")
    second = sb(lab, "docker.mirrors")
    assert second.rc == 0 and second.changed == 0, second.stdout


def test_mirrors_keep_other_daemon_json_keys(lab):
    h = lab.hosts[1]
    ssh(lab, h, "cp /etc/docker/daemon.json /tmp/daemon.json.orig; "
                "sed -i 's/^{/{\\n  \"log-level\": \"warn\",/' /etc/docker/daemon.json; systemctl restart docker")
    try:
        out = sb(lab, "docker.mirrors", "--mirrors", "https://registry.lab:5001,https://registry.lab:5000")
        assert out.rc == 0, out.stdout + out.stderr
        text = ssh(lab, h, "cat /etc/docker/daemon.json").stdout
        assert '"log-level": "warn"' in text and "registry.lab:5000" in text
    finally:
        ssh(lab, h, "mv /tmp/daemon.json.orig /etc/docker/daemon.json && systemctl restart docker")
    assert sb(lab, "docker.mirrors").rc == 0


def test_fab_with_two_hosts_works_like_inv(lab):
    a, b = lab.hosts[1].addr, lab.hosts[2].addr
    out = sb(lab, "-i", str(lab.key), "-H", f"{a},{b}", "docker.install", "--method", "distro", tool="fab",
             env={"SWARMBOOK_ENV": ""})  # no hosts file: fab -H and -i say it all
    assert out.rc == 0, out.stdout + out.stderr
    assert set(out.recap()) == {a, b}
    assert out.changed == 0
    assert len([e for e in out.events if e["event"] == "recap"]) == 1  # one run for both hosts


def test_check_mode_changes_nothing(lab):
    h = lab.hosts[2]
    ssh(lab, h, "systemctl stop docker docker.socket")
    try:
        out = sb(lab, "docker.install", "--check")
        assert out.rc == 0
        assert [e["step"] for e in out.steps("changed", h.addr)] == ["start docker"]
        assert all(e["check"] for e in out.steps())
        assert ssh(lab, h, "systemctl is-active docker", check=False).stdout.strip() != "active"
    finally:
        ssh(lab, h, "systemctl start docker")


def test_wrong_key_and_silent_host_fail_fast_with_one_line_each(lab, tmp_path):
    import os
    import re
    import subprocess
    import time

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    text = re.sub(r"(?m)^SSH_KEY=.*$", f"SSH_KEY={other}", lab.hosts_env.read_text())
    env_file = tmp_path / "hosts.env"
    env_file.write_text(text)
    os.chmod(env_file, 0o600)
    out = sb(lab, "docker.install", hosts_env=str(env_file))
    assert out.rc == 1
    assert {e["host"] for e in out.failed} == {h.addr for h in lab.hosts}
    assert all("key refused" in e["reason"] for e in out.failed), out.failed
    # an address on the lab network where no host answers: named, within seconds
    silent = lab.hosts[0].addr.rsplit(".", 1)[0] + ".250"
    env_file.write_text(f"MANAGERS={silent}\nSSH_KEY={lab.key}\nSSH_CONNECT_TIMEOUT=3\n")
    t0 = time.monotonic()
    out = sb(lab, "docker.install", hosts_env=str(env_file))
    assert out.rc == 1 and time.monotonic() - t0 < 20
    (fail,) = out.failed
    assert fail["host"] == silent and "cannot connect" in fail["reason"]
