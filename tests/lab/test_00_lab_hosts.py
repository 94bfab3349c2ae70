"""Real proof that the lab works: SSH into every host with the lab key (Fabric), check systemd,
identity, addresses, the TLS registry and mirror, host-to-host traffic and idempotent up()."""

from __future__ import annotations

import io
import stat
import time

import pytest
from fabric import Connection

from swarmbook import lab as swarmbook_lab
from swarmbook.lab import layout

pytestmark = pytest.mark.lab


def connect(lab, host) -> Connection:
    return Connection(host.addr, user="root", connect_timeout=10,
                      connect_kwargs={"key_filename": str(lab.key), "look_for_keys": False,
                                      "allow_agent": False})


def run(conn: Connection, cmd: str, **kw):
    kw.setdefault("in_stream", False)  # never read pytest's (captured) stdin
    return conn.run(cmd, hide=True, warn=True, **kw)


@pytest.fixture(scope="module")
def conns(lab):
    cs = {h.hostname: connect(lab, h) for h in lab.hosts}
    yield cs
    for c in cs.values():
        c.close()


def registry_password(lab) -> str:
    return (lab.state_dir / "registry.password").read_text().strip()


def test_systemd_running_on_every_host(lab, conns):
    for h in lab.hosts:
        c = conns[h.hostname]
        deadline = time.monotonic() + 60
        while True:
            state = run(c, "systemctl is-system-running").stdout.strip()
            if state not in ("starting", "initializing") or time.monotonic() > deadline:
                break
            time.sleep(1)
        if state != "running":
            failed = run(c, "systemctl --failed --no-legend --plain").stdout
            print(f"{h.hostname}: {state}; failed units:\n{failed}")
        assert state == "running", f"{h.hostname}: systemd is {state}"
        assert run(c, "systemctl is-active ssh").stdout.strip() == "active"


def test_hostname_address_and_identity(lab, conns):
    host_keys = set()
    machine_ids = set()
    for h in lab.hosts:
        c = conns[h.hostname]
        assert run(c, "hostname").stdout.strip() == h.hostname
        assert f"inet {h.addr}/24" in run(c, "ip -4 addr").stdout
        host_keys.add(run(c, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[1])
        machine_ids.add(run(c, "cat /etc/machine-id").stdout.strip())
    # per-host SSH host keys and machine ids (not shared through the image)
    assert len(host_keys) == len(lab.hosts)
    assert len(machine_ids) == len(lab.hosts)


def test_sshd_is_key_only(lab, conns):
    c = conns[lab.hosts[0].hostname]
    cfg = run(c, "sshd -T").stdout.lower()
    assert "permitrootlogin without-password" in cfg or "permitrootlogin prohibit-password" in cfg
    assert "passwordauthentication no" in cfg


def test_registry_tls_verified_from_host(lab, conns):
    code = "curl -sS -o /dev/null -w '%{http_code}' "
    for h in lab.hosts:  # no --cacert: the lab CA is in every host's system trust store
        c = conns[h.hostname]
        assert run(c, code + "https://registry.lab:5000/v2/").stdout == "401", h.hostname
        auth = io.StringIO(f'user = "swarmbook:{registry_password(lab)}"\n')
        assert run(c, code + "-K - https://registry.lab:5000/v2/", in_stream=auth).stdout == "200", h.hostname
    # the read-only mirror needs no auth and serves the seeded docker.io images
    tags = run(c, "curl -sS https://registry.lab:5001/v2/library/busybox/tags/list").stdout
    assert '"latest"' in tags
    tags = run(c, "curl -sS https://registry.lab:5001/v2/library/debian/tags/list").stdout
    assert '"bookworm"' in tags


def test_hosts_reach_each_other(lab, conns):
    for a in lab.hosts:
        for b in lab.hosts:
            if a is b:
                continue
            c = conns[a.hostname]
            assert run(c, f"ping -c1 -W2 {b.addr}").ok, f"{a.hostname} cannot ping {b.hostname}"
            r = run(c, f"timeout 3 bash -c '</dev/tcp/{b.addr}/22'")
            assert r.ok, f"{a.hostname} cannot reach {b.hostname}:22"
            assert run(c, f"getent hosts {b.hostname}").stdout.split()[0] == b.addr


def test_docker_install_is_preseeded_and_offers_each_hosts_engine(lab, conns):
    """Docker is not installed, but the .debs and apt lists of the engine each host offers are in
    the image: apt's candidate is that engine (28.5: sid's, pinned over trixie's 26.1)."""
    from swarmbook.dockercmd import version_matches
    from swarmbook.lab.layout import ENGINES

    for h in lab.hosts:
        c = conns[h.hostname]
        engine = ENGINES[h.engine]
        assert not run(c, "command -v dockerd").ok
        assert run(c, "ls /var/cache/apt/archives/docker.io_*.deb").ok
        assert f"VERSION_CODENAME={engine.release}" in run(c, "cat /etc/os-release").stdout
        sim = run(c, "apt-get install -s -y --no-install-recommends docker.io" + (" docker-cli" if engine.release != "bookworm" else ""))
        inst = [line.split()[2].lstrip("(") for line in sim.stdout.splitlines() if line.startswith("Inst docker.io ")]
        assert sim.ok and inst and version_matches(inst[0], engine.name), (h, sim.stdout[-500:])
        if engine.sid:  # only the engine's own packages come from sid, never libc6 or systemd
            sid = [line.split()[1] for line in sim.stdout.splitlines()
                   if line.startswith("Inst ") and "unstable" in line]
            assert "docker.io" in sid and not {"libc6", "systemd", "perl-base"} & set(sid), sid


def test_hosts_env_and_secret_files(lab):
    env = lab.hosts_env.read_text()
    assert stat.S_IMODE(lab.hosts_env.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(lab.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((lab.state_dir / "ca.key").stat().st_mode) == 0o600
    assert f"MANAGERS={lab.hosts[0].addr}\n" in env
    assert f"SSH_KEY={lab.key}\n" in env
    assert f"REGISTRY_CA={lab.ca}\n" in env
    assert "REGISTRY=registry.lab:5000\n" in env


def test_second_up_changes_nothing(lab):
    t0 = time.monotonic()
    again = swarmbook_lab.up(hosts=len(lab.hosts), state_dir=lab.state_dir)
    elapsed = time.monotonic() - t0
    print(f"second up(): {elapsed:.1f}s, changed={again.changed}")
    assert again.changed == []  # its time is the bench's (tests assert no wall-clock figures)
    assert again.hosts == lab.hosts and again.hosts_env == lab.hosts_env
    st = swarmbook_lab.status(lab.state_dir)
    assert st["network"]["ours"] and st["network"]["subnet"] == layout.subnet()
    assert all(r["up"] for r in st["registry"].values())
    assert [h["hostname"] for h in st["hosts"]] == [h.hostname for h in lab.hosts]
    assert all(h["container"] == "running" and h["sshd"] == "active" for h in st["hosts"])


def test_lab_status_command_line_shows_hosts_registries_and_memory(lab):
    """`inv lab.status` (the command line, not the Python API): every host running with systemd
    and sshd, both registries up, and the lab's resident memory."""
    import subprocess

    from .sb import REPO

    out = subprocess.run(["inv", "lab.status"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for h in lab.hosts:
        assert f"{h.hostname:4} {h.addr:15} container=running systemd=running sshd=active" in out.stdout, out.stdout
    assert "registry  :5000 up" in out.stdout and "registry  :5001 up" in out.stdout
    assert "memory    resident " in out.stdout and "RSS MiB per host: h1 " in out.stdout
    st = subprocess.run(["inv", "lab.status", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120)
    import json

    doc = json.loads(st.stdout)
    assert set(doc["memory"]["hosts"]) == {h.hostname for h in lab.hosts}
