"""Last of the lab tests: the loaded lab's memory, then lab.down leaves nothing of the lab
behind, a second down is a no-op, and up() after down() comes back from the cache (no image
build). Runs last (file order): every earlier test has left its services running by then."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from swarmbook import lab as swarmbook_lab
from swarmbook.lab import hosts as lab_hosts
from swarmbook.lab import layout, registry

from .sb import sb, ssh

pytestmark = pytest.mark.lab

GIB = 1024  # MiB


def _cmdlines_naming(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv and pid != str(os.getpid()):
            found.append(f"{pid}: {argv[:200]}")
    return found


def _nested_cgroups(lab) -> list[Path]:
    """cgroup dirs of the containers running inside the lab hosts (cgroupns=host puts them in the
    outer machine's /sys/fs/cgroup/<controller>/docker/<id>)."""
    dirs = []
    for h in lab.hosts:
        ids = ssh(lab, h, "docker ps -q --no-trunc 2>/dev/null || true", check=False).stdout.split()
        dirs += [Path("/sys/fs/cgroup/memory/docker") / i for i in ids]
        dirs += [Path("/sys/fs/cgroup/unified/docker") / i for i in ids]
    return [d for d in dirs if d.exists()]


def _get(info, path: str, accept: str = "") -> bytes:
    import base64
    import ssl
    import urllib.request

    password = (info.state_dir / "registry.password").read_text().strip()
    req = urllib.request.Request(f"https://{layout.gateway()}:{layout.REGISTRY_PORT}{path}")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{layout.REGISTRY_USER}:{password}".encode()).decode())
    if accept:
        req.add_header("Accept", accept)
    ctx = ssl.create_default_context(cafile=str(info.ca))
    ctx.check_hostname = False  # the certificate names registry.lab and the gateway address
    with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
        return r.read()


def _pull_verified(info, repo_tag: str) -> None:
    import hashlib
    import json

    repo, tag = repo_tag.rsplit(":", 1)
    manifest = json.loads(_get(info, f"/v2/{repo}/manifests/{tag}",
                               "application/vnd.docker.distribution.manifest.v2+json"))
    for blob in [manifest["config"], *manifest["layers"]]:
        data = _get(info, f"/v2/{repo}/blobs/{blob['digest']}")
        assert "sha256:" + hashlib.sha256(data).hexdigest() == blob["digest"], (repo_tag, blob["digest"])


def test_memory_of_the_loaded_lab_then_down_leaves_nothing_then_up_from_cache(lab):
    mem = swarmbook_lab.memory()
    print(f"lab memory with every service of the runbook running: {mem}")
    assert set(mem["hosts"]) == {h.hostname for h in lab.hosts}
    assert all(m["processes"] >= 5 for m in mem["hosts"].values()), mem  # systemd, sshd, dockerd, ...
    assert mem["total"]["rss_mib"] < 3 * GIB, mem  # issue: a 3-host lab with dockerd stays under 3 GiB

    state = lab.state_dir
    sid = layout.state_id(state)
    data = layout.data_dir(state)
    bridge = layout.network()
    cgroups = _nested_cgroups(lab)
    assert cgroups, "no nested containers found: the lab should be running the runbook's services"
    host_pids = [int(subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", h.name], capture_output=True,
                                    text=True, check=True).stdout) for h in lab.hosts]

    known_hosts = lab.known_hosts.read_bytes()
    swarmbook_lab.down()

    assert [c for c in lab_hosts.lab_containers() if c["owner"] == sid] == []
    assert subprocess.run(["docker", "network", "inspect", bridge], capture_output=True).returncode != 0
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode != 0  # bridge gone
    assert [pid for pid in host_pids if Path(f"/proc/{pid}").exists()] == []  # hosts' systemd gone
    assert _cmdlines_naming(f"{state}/") == []  # registries, apt server
    assert _cmdlines_naming(f"{data}/") == []
    assert str(data) not in Path("/proc/mounts").read_text()
    assert not data.exists()
    assert [d for d in cgroups if d.exists()] == []  # nested containers stopped, not orphaned
    assert not lab.hosts_env.exists()
    st = swarmbook_lab.status()
    assert st["hosts"] == [] and st["network"] is None and not any(r["up"] for r in st["registry"].values())

    swarmbook_lab.down()  # nothing left to do: no error

    t0 = time.monotonic()
    again = swarmbook_lab.up(hosts=len(lab.hosts))
    print(f"up() after down(), warm cache: {time.monotonic() - t0:.1f}s; {again.changed}")
    assert not [c for c in again.changed if c.startswith("image ") or c.startswith("built ")], again.changed
    assert any("created" in c for c in again.changed), again.changed
    # the registry's storage came from the cache's copy of a freshly seeded one: nothing pushed,
    # and every seed image is served whole (manifest and each blob match their digests)
    assert "registry storage seeded from the cache" in again.changed, again.changed
    assert not [c for c in again.changed if c.startswith("pushed ")], again.changed
    for repo_tag in registry.seed_images():
        _pull_verified(again, repo_tag)
    for h in again.hosts:
        assert ssh(again, h, "systemctl is-active ssh", port=22).stdout.strip() == "active"
    # new containers, the same host keys: the lab's known_hosts is unchanged and its hosts.env works
    assert again.known_hosts.read_bytes() == known_hosts
    probe = sb(again, "docker.install", "--check")
    assert probe.rc == 0 and not probe.failed, probe.stdout + probe.stderr
