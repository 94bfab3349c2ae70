"""docker.install / docker.mirrors on real lab hosts (systemd, nested dockerd), via inv and fab."""

import subprocess

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def _fresh(lab) -> list[str]:
    return [h.addr for h in lab.hosts if ssh(lab, h, "command -v dockerd", check=False).returncode != 0]


def _step_names(out, addr: str) -> list[str]:
    return [e["step"] for e in out.steps(host=addr)]


def test_fab_on_two_hosts_installs_then_inv_agrees_and_does_the_rest(lab):
    """`fab -H a,b docker.install` does the same job as `inv docker.install` on its group:
    fab installs on two fresh hosts (no hosts file: -H and -i say it all), then inv on all hosts
    in parallel finds those two converged, installs the third with the same steps, and a second
    inv run changes nothing."""
    fresh = _fresh(lab)
    a, b = lab.hosts[1].addr, lab.hosts[2].addr
    fab = sb(lab, "-i", str(lab.key), "-H", f"{a},{b}", "docker.install", "--method", "distro", tool="fab",
             env={"SWARMBOOK_ENV": ""})
    assert fab.rc == 0, fab.stdout + fab.stderr
    assert set(fab.recap()) == {a, b}
    assert len([e for e in fab.events if e["event"] == "recap"]) == 1  # one run for both hosts
    for addr in (a, b):
        if addr in fresh:
            assert fab.recap()[addr]["changed"] >= 1, fab.stdout
        assert ssh(lab, addr, "systemctl is-active docker").stdout.strip() == "active"

    first = sb(lab, "docker.install")
    assert first.rc == 0, first.stdout + first.stderr
    assert set(first.recap()) == {h.addr for h in lab.hosts}
    for addr in (a, b):  # what fab did, inv sees as done
        assert first.recap()[addr]["changed"] == 0, first.stdout
    h1 = lab.hosts[0].addr
    if h1 in fresh and a in fresh:  # both made a fresh install: the same steps, fab or inv
        assert _step_names(first, h1) == _step_names(fab, a), (first.stdout, fab.stdout)
        assert first.recap()[h1]["changed"] >= 1
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


def test_daemon_json_that_dockerd_refuses_is_rolled_back(lab):
    """A daemon.json dockerd will not start with must never leave a host without Docker. Here the
    operator set the mirror as a flag (DOCKER_OPTS in /etc/default/docker, which Debian's unit
    reads); docker.mirrors then writes registry-mirrors into daemon.json too, and dockerd refuses
    a directive given both as a flag and in the file. Expected: failed on that host, the old
    daemon.json back, Docker running; the other hosts unchanged."""
    h = lab.hosts[2]
    ssh(lab, h, "cp -p /etc/docker/daemon.json /tmp/daemon.json.orig && echo '{}' > /etc/docker/daemon.json && "
                "cp -p /etc/default/docker /tmp/default-docker.orig && "
                "echo 'DOCKER_OPTS=\"--registry-mirror=https://registry.lab:5001\"' >> /etc/default/docker && "
                "systemctl restart docker")
    try:
        out = sb(lab, "docker.mirrors")
        assert out.rc == 1, out.stdout + out.stderr
        assert [e["host"] for e in out.failed] == [h.addr], out.stdout
        assert all(r["changed"] == 0 for addr, r in out.recap().items() if addr != h.addr), out.stdout
        assert ssh(lab, h, "systemctl is-active docker").stdout.strip() == "active"
        assert ssh(lab, h, "cat /etc/docker/daemon.json").stdout.strip() == "{}"
        assert "registry.lab:5001" in ssh(lab, h, "docker info --format '{{json .RegistryConfig.Mirrors}}'").stdout
    finally:
        ssh(lab, h, "mv /tmp/default-docker.orig /etc/default/docker && mv /tmp/daemon.json.orig /etc/docker/daemon.json && "
                    "systemctl restart docker")
    again = sb(lab, "docker.mirrors")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_non_root_ssh_user_joins_docker_group_and_uses_docker_in_a_new_session(lab):
    """A sudo user (not root) runs docker.install: it is added to the docker group, swarmbook
    reconnects so the group applies, a fresh login uses docker without sudo; rerun 0 changed."""
    h = lab.hosts[2]
    ssh(lab, h, "id deploy >/dev/null 2>&1 || useradd -m -s /bin/bash deploy; "
                "echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy; chmod 0440 /etc/sudoers.d/deploy; "
                "install -d -o deploy -g deploy -m 0700 ~deploy/.ssh; "
                "install -o deploy -g deploy -m 0600 /root/.ssh/authorized_keys ~deploy/.ssh/authorized_keys; "
                "gpasswd -d deploy docker >/dev/null 2>&1 || true")
    try:
        out = sb(lab, "-i", str(lab.key), "-H", f"deploy@{h.addr}", "docker.install", "--method", "distro",
                 tool="fab", env={"SWARMBOOK_ENV": ""})
        assert out.rc == 0, out.stdout + out.stderr
        assert any("docker" in e["step"] and e["status"] == "changed" for e in out.steps(host=h.addr)), out.stdout
        assert "docker" in ssh(lab, h, "id -nG deploy").stdout.split()
        login = subprocess.run(["ssh", "-i", str(lab.key), "-o", "StrictHostKeyChecking=no", "-o",
                                "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"deploy@{h.addr}",
                                "docker version --format '{{.Server.Version}}'"],
                               capture_output=True, text=True, timeout=60)
        assert login.returncode == 0 and login.stdout.strip(), login.stderr
        again = sb(lab, "-i", str(lab.key), "-H", f"deploy@{h.addr}", "docker.install", "--method", "distro",
                   tool="fab", env={"SWARMBOOK_ENV": ""})
        assert again.rc == 0 and again.changed == 0, again.stdout
    finally:
        ssh(lab, h, "userdel -r deploy >/dev/null 2>&1; rm -f /etc/sudoers.d/deploy")


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
    # the manager that would hold the cluster lock refuses the key: the run stops there, changing nothing
    stop = sb(lab, "docker.install", hosts_env=str(env_file))
    assert stop.rc == 3 and not stop.steps(), stop.stdout + stop.stderr
    (error,) = [e["error"] for e in stop.events if e.get("event") == "error"]
    assert error.startswith("cluster lock not taken, nothing changed: no manager answered (cannot log in to "
                            f"root@{lab.hosts[0].addr}:") and "key refused" in error, error
    out = sb(lab, "docker.install", "--no-lock", hosts_env=str(env_file))  # each host's own line
    assert out.rc == 1
    assert {e["host"] for e in out.failed} == {h.addr for h in lab.hosts}
    assert all("key refused" in e["reason"] for e in out.failed), out.failed
    # an address on the lab network where no host answers: named, within seconds
    silent = lab.hosts[0].addr.rsplit(".", 1)[0] + ".250"
    env_file.write_text(f"MANAGERS={silent}\nSSH_KEY={lab.key}\nSSH_CONNECT_TIMEOUT=3\n")
    t0 = time.monotonic()
    out = sb(lab, "docker.install", "--no-lock", hosts_env=str(env_file), timeout=120)  # (else: exit 3 at the lock)
    print(f"silent host failed after {time.monotonic() - t0:.1f}s")  # timings are the bench's; the reason says why
    assert out.rc == 1
    (fail,) = out.failed
    assert fail["host"] == silent and "cannot connect" in fail["reason"] and "timed out" in fail["reason"], fail
