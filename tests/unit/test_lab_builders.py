"""Unit tests for the lab's pure builders (no docker, no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarmbook.lab import builders, layout


@pytest.fixture(autouse=True)
def instance_zero(monkeypatch):
    """These tests pin the default lab (instance 0), whatever SWARMBOOK_LAB_INSTANCE the shell has."""
    monkeypatch.delenv("SWARMBOOK_LAB_INSTANCE", raising=False)


def test_host_numbering_and_addresses():
    h = layout.host(1)
    assert (h.name, h.hostname, h.addr) == ("swarmbook-lab-h1", "h1", "172.29.100.11")
    assert [x.addr for x in layout.hosts(3)] == ["172.29.100.11", "172.29.100.12", "172.29.100.13"]
    with pytest.raises(layout.LabInputError):
        layout.hosts(0)
    with pytest.raises(ValueError):
        layout.host(layout.MAX_HOSTS + 1)


def test_host_create_argv_has_lab_flags_and_no_privileged():
    h = layout.host(2)
    state = Path("/abs/.lab")
    sid = layout.state_id(state)
    argv = builders.host_create_argv(h, Path("/var/lib/swarmbook-lab/abc/h2"), state)
    assert argv[:2] == ["docker", "create"]
    assert "--privileged" not in argv
    pairs = list(zip(argv, argv[1:]))
    for flag in [("--name", "swarmbook-lab-h2"), ("--hostname", "h2"), ("--ip", "172.29.100.12"),
                 ("--network", "swarmbook-lab"), ("--cap-add", "ALL"),
                 ("--cap-drop", "SYS_RESOURCE"), ("--security-opt", "seccomp=unconfined"),
                 ("--security-opt", "apparmor=unconfined"), ("--device-cgroup-rule", "a *:* rwm"),
                 ("-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"),
                 ("-v", "/var/lib/swarmbook-lab/abc/h2/docker:/var/lib/docker"),
                 ("--tmpfs", "/run"), ("--tmpfs", "/run/lock"),
                 ("--add-host", "registry.lab:172.29.100.1"),
                 ("--label", "swarmbook.lab=1"), ("--label", f"swarmbook.lab.state={sid}"),
                 ("--label", "swarmbook.lab.dir=/abs/.lab")]:
        assert flag in pairs, flag
    assert "--cgroupns=host" in argv
    assert argv[-2:] == [layout.HOST_IMAGE, "/sbin/init"]


def test_network_create_argv():
    argv = builders.network_create_argv(Path("/abs/.lab"))
    assert argv[-1] == "swarmbook-lab"
    assert ("--subnet", "172.29.100.0/24") in zip(argv, argv[1:])
    assert ("--gateway", "172.29.100.1") in zip(argv, argv[1:])
    assert "com.docker.network.bridge.name=swarmbook-lab" in argv
    assert f"swarmbook.lab.state={layout.state_id(Path('/abs/.lab'))}" in argv


def test_hosts_env_text_three_hosts_exact():
    text = builders.hosts_env_text(layout.hosts(3), Path("/abs/.lab/id_ed25519"), "s3cret",
                                   Path("/abs/.lab/ca.crt"), known_hosts=Path("/abs/.lab/known_hosts"))
    assert text == (
        "# swarmbook lab hosts file, written by `inv lab.up`\n"
        "MANAGERS=172.29.100.11\n"
        "WORKERS=172.29.100.12,172.29.100.13\n"
        "BUILD=172.29.100.11\n"
        "GITLAB=172.29.100.11\n"
        "RUNNERS=172.29.100.12\n"
        "KONG=172.29.100.11\n"
        "# the test environment's deploy runner sits on the manager (RUNNERS is the builder runner)\n"
        "DEPLOY_RUNNERS=172.29.100.11\n"
        "DEPLOY_RUNNER_TAGS=test\n"
        "SSH_USER=root\n"
        "SSH_PORT=22\n"
        "SSH_KEY=/abs/.lab/id_ed25519\n"
        "DOCKER_INSTALL_METHOD=distro\n"
        "DOCKER_MIRRORS=https://registry.lab:5001\n"
        "REGISTRY=registry.lab:5000\n"
        "REGISTRY_USER=swarmbook\n"
        "REGISTRY_PASSWORD=s3cret\n"
        "REGISTRY_CA=/abs/.lab/ca.crt\n"
        "DOCKER_TLS_DIR=/abs/.lab/tls\n"
        "# no IPVS in this kernel: no routing mesh; every node runs one task on its own address\n"
        "STACK_PUBLISH_MODE=host\n"
        "# every lab host's keys, recorded by lab.up (kept with the state dir across down/up)\n"
        "SSH_KNOWN_HOSTS=/abs/.lab/known_hosts\n"
    )
    from swarmbook import config
    settings = config.parse(text, environ={})  # every key the lab writes is one swarmbook knows
    assert settings["SSH_KNOWN_HOSTS"] == "/abs/.lab/known_hosts"


def test_hosts_env_single_host_and_five_hosts():
    one = builders.roles(layout.hosts(1))
    assert one["MANAGERS"] == ["172.29.100.11"] and one["WORKERS"] == []
    assert one["RUNNERS"] == ["172.29.100.11"]
    five = builders.roles(layout.hosts(5))
    assert five["WORKERS"] == [f"172.29.100.{i}" for i in (12, 13, 14, 15)]
    assert five["RUNNERS"] == ["172.29.100.12"]


def test_hosts_env_parses_with_dotenv():
    import io

    import dotenv

    text = builders.hosts_env_text(layout.hosts(2), Path("/k"), "p#w=x", Path("/ca"))
    values = dotenv.dotenv_values(stream=io.StringIO(text))
    assert values["WORKERS"] == "172.29.100.12"
    assert values["REGISTRY_PASSWORD"] == "p#w=x"


def test_registry_config_main_and_mirror():
    main = builders.registry_config_text(port=5000, storage=Path("/s"), cert=Path("/c"),
                                         key=Path("/k"), secret="x", htpasswd=Path("/h"))
    assert 'addr: "172.29.100.1:5000"' in main
    assert "htpasswd:" in main and 'path: "/h"' in main
    assert "readonly" not in main
    mirror = builders.registry_config_text(port=5001, storage=Path("/s"), cert=Path("/c"),
                                           key=Path("/k"), secret="x", readonly=True)
    assert 'addr: "172.29.100.1:5001"' in mirror
    assert "auth:" not in mirror
    assert "readonly:\n      enabled: true" in mirror
    assert 'rootdirectory: "/s"' in mirror


def test_registry_config_is_valid_yaml():
    import yaml
    cfg = yaml.safe_load(builders.registry_config_text(
        port=5001, storage=Path("/s"), cert=Path("/c"), key=Path("/k"), secret="x", readonly=True))
    assert cfg["storage"]["maintenance"]["readonly"]["enabled"] is True
    assert cfg["http"]["tls"]["certificate"] == "/c"


def test_server_cert_sans():
    ext = builders.server_ext_text()
    assert "subjectAltName=DNS:registry.lab,IP:172.29.100.1" in ext
    assert "serverAuth" in ext


def test_debootstrap_argv():
    argv = builders.debootstrap_argv(Path("/t"))
    assert argv[:2] == ["debootstrap", "--variant=minbase"]
    assert "openssh-server" in argv[2] and "systemd-sysv" in argv[2]
    assert argv[-3:] == ["bookworm", "/t", "http://deb.debian.org/debian"]
    assert not any(a.startswith("--include") for a in builders.debootstrap_argv(Path("/t"), ()))


def test_host_image_context():
    ctx = builders.host_image_context("base:1", "r1")
    df = ctx["Dockerfile"]
    assert df.startswith("FROM base:1\n")
    assert "rm -f /etc/ssh/ssh_host_*" in df and ": > /etc/machine-id" in df
    assert "LABEL swarmbook.lab.recipe=r1" in df
    assert "PermitRootLogin prohibit-password" in ctx["sshd.conf"]
    assert "PasswordAuthentication no" in ctx["sshd.conf"]
    assert "Before=ssh.service" in ctx["boot.service"]
    assert "ssh-keygen -A" in ctx["boot.service"]


def test_busybox_tree():
    tree = builders.busybox_tree(["sh", "ls", "busybox", "ls", ""])
    assert tree["bin/sh"] is None and tree["bin/ls"] is None
    assert "bin/busybox" not in tree
    assert tree["etc/passwd"].startswith("root:x:0:0:")


def test_import_argv():
    assert builders.import_argv("img", ('CMD ["sh"]',)) == [
        "docker", "import", "--change", 'CMD ["sh"]', "-", "img"]
    assert builders.import_argv("img", source="/t.tar")[-2:] == ["/t.tar", "img"]


def test_state_dir_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SWARMBOOK_LAB_DIR", str(tmp_path / "x"))
    assert layout.state_dir() == (tmp_path / "x").resolve()
    monkeypatch.delenv("SWARMBOOK_LAB_DIR")
    assert layout.state_dir() == layout.REPO_ROOT / ".lab"
    assert layout.state_dir(tmp_path) == tmp_path.resolve()
    assert len(layout.state_id(tmp_path)) == 12
    assert layout.data_dir(tmp_path).name == layout.state_id(tmp_path)


def test_hosts_env_keeps_recorded_ssh_ports():
    from swarmbook.lab import builders
    old = "MANAGERS=172.29.100.11:2222\nGITLAB=172.29.100.11:2222\nWORKERS=172.29.100.12\n"
    new = "MANAGERS=172.29.100.11\nGITLAB=172.29.100.11\nWORKERS=172.29.100.12\nSSH_PORT=22\n"
    assert builders.carry_ports(old, new) == \
        "MANAGERS=172.29.100.11:2222\nGITLAB=172.29.100.11:2222\nWORKERS=172.29.100.12\nSSH_PORT=22\n"


def test_sid_engine_set_takes_new_packages_from_sid_never_upgrades():
    sim = ("NOTE: This is only a simulation!\n"
           "Inst libc6 [2.41-12] (2.43-1 Debian:unstable [amd64])\n"
           "Inst runc (1.3.6+ds1-1 Debian:unstable [amd64])\n"
           "Inst containerd (2.1.9+ds1-5 Debian:unstable [amd64])\n"
           "Inst tini-static (0.19.0-6+b2 Debian:13.2/stable [amd64])\n"
           "Inst docker.io (28.5.2+dfsg4-5 Debian:unstable [amd64])\n"
           "Conf docker.io (28.5.2+dfsg4-5 Debian:unstable [amd64])\n")
    assert builders.sid_engine_set(sim) == ["containerd", "docker.io", "runc"]
    pin = builders.sid_pin_text(["docker.io", "containerd"])
    assert pin.startswith("Package: containerd docker.io\nPin: release n=sid\nPin-Priority: 600\n")
    assert pin.endswith("Package: *\nPin: release n=sid\nPin-Priority: 100\n")


def test_hosts_of_every_engine_get_a_writable_proc_sys_and_their_engine_label(tmp_path):
    from swarmbook.lab.layout import ENGINES, LabHost, engines

    h = LabHost("swarmbook-lab-h1", "h1", "172.29.100.11", "28.5")
    argv = builders.host_create_argv(h, tmp_path, tmp_path, ENGINES["28.5"].image)
    assert "systempaths=unconfined" in argv and f"{layout.ENGINE_LABEL}=28.5" in argv
    assert argv[-2] == "swarmbook-lab-host:trixie"
    assert [e.name for e in engines("20.10,26.1,28.5", 3)] == ["20.10", "26.1", "28.5"]
    assert [e.release for e in engines("26.1", 2)] == ["trixie", "trixie"] and engines(None, 3) is None
    for bad, msg in (("27.0", "not one of"), ("20.10,26.1", "2 engines for 3 hosts")):
        with pytest.raises(layout.LabError, match=msg):
            engines(bad, 3)


@pytest.mark.parametrize("argv, line", [
    (["--hosts", "abc"], "lab.up: --hosts: 'abc' is not a whole number"),
    (["--hosts", "0"], "lab.up: --hosts must be 1..200, got 0"),
    (["--engine", "99"], "lab.up: --engine '99' is not one of 20.10, 26.1, 28.5"),
    (["--hosts", "2", "--engine", "26.1,28.5,20.10"], "lab.up: --engine lists 3 engines for 2 hosts"),
])
def test_lab_up_refuses_bad_options_in_one_line_before_making_anything(tmp_path, argv, line):
    import subprocess

    state = tmp_path / "state"
    env = {**os.environ, "SWARMBOOK_LAB_DIR": str(state), "SWARMBOOK_LAB_INSTANCE": "9"}
    env.pop("SWARMBOOK_LAB_ENGINE", None)
    p = subprocess.run(["inv", "lab.up", *argv], cwd=Path(__file__).resolve().parents[2], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert p.stderr.strip().startswith(line) and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not state.exists()
