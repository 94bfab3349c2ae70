"""up / status / down: the lab's public operations, each idempotent."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from .. import assets
from . import builders, creds, image, layout, platform, procmem, registry, sh, sshkeys
from . import hosts as lab_hosts
from .layout import LabError, LabInfo, Paths

OUTER_SETUP = assets.path("scripts/outer-setup.sh")


def _outer_ready() -> None:
    """Packages, outer dockerd and the forward rule for the lab bridge (fast when done)."""
    if OUTER_SETUP.exists():
        sh.run(["bash", str(OUTER_SETUP)], timeout=900)
    elif not sh.ok(["docker", "info"]):
        raise LabError("the outer docker engine is not running (see scripts/outer-setup.sh)")


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """One up/down at a time per lab instance: its names and addresses are machine-wide."""
    root = layout.data_root()
    root.mkdir(parents=True, exist_ok=True)
    k = layout.instance()
    with open(root / (".lock" if k == 0 else f".lock{k}"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def up(hosts: int = 3, state_dir: Path | None = None, engine: str | None = None) -> LabInfo:
    """Bring the lab to `hosts` running hosts plus the registry; only what is missing is made.

    ``engine``: the Docker engine generation every host offers (layout.ENGINES, e.g. "28.5"),
    or a comma list with one per host for a mixed cluster; None: $SWARMBOOK_LAB_ENGINE (the
    same forms), else each existing host keeps its own and new hosts get the newest. A host made for another engine
    is recreated (its nested Docker state is lost: that is what a new engine means here).
    """
    layout.hosts(hosts)  # validate before taking the lock
    wanted = layout.engines(engine if engine is not None else os.environ.get("SWARMBOOK_LAB_ENGINE"), hosts)
    with _machine_lock():
        return _up(hosts, state_dir, wanted)


def _up(hosts: int, state_dir: Path | None, wanted: list[layout.Engine] | None = None) -> LabInfo:
    hs = layout.hosts(hosts)
    hs = ([layout.LabHost(h.name, h.hostname, h.addr, e.name) for h, e in zip(hs, wanted)]
          if wanted else lab_hosts.engines_now(hs))
    t0 = time.monotonic()
    p = Paths(layout.state_dir(state_dir))
    sid = layout.state_id(p.state)
    data = layout.data_dir(p.state)
    changed: list[str] = []
    _outer_ready()
    if creds.ensure_state_dir(p):
        changed.append(f"state dir {p.state}")
    if creds.ensure_ssh_key(p):
        changed.append("ssh key")
    new_keys = creds.ensure_host_keys(p, hs)
    if new_keys:
        changed.append("host keys of " + ", ".join(new_keys))
    new_certs = creds.ensure_ca_and_cert(p)
    changed += new_certs
    refresh = bool(new_certs) or "ssh key" in changed  # hosts/registries alive with old creds
    password, made = creds.ensure_password(p)
    if made:
        changed.append("registry password")
    if creds.ensure_htpasswd(p, layout.REGISTRY_USER, password):
        changed.append("htpasswd")
    with image.build_lock():
        for release in sorted({layout.ENGINES[h.engine].release for h in hs}):
            if image.ensure_host_image(release):
                changed.append(f"image {layout.HOST_IMAGE_REPO}:{release}")
    changed += lab_hosts.clear_foreign(sid)
    changed += registry.stop_foreign(p)
    changed += lab_hosts.ensure_network(p.state)
    if refresh:
        for port in registry.PORTS:
            registry.stop(p, port)
    storage = data / "registry"
    fresh_storage = registry.storage_empty(storage)
    if fresh_storage and registry.restore_seeded(storage):
        changed.append("registry storage seeded from the cache")
    changed += registry.ensure_running(p, storage, password)
    changed += platform.ensure_runner_repo(p)
    changed += lab_hosts.remove_extra(hosts, sid, data)
    for h in hs:
        changed += lab_hosts.ensure_host(h, p, data / h.hostname, refresh=refresh,
                                         new_keys=h.hostname in new_keys)
    seeded = registry.ensure_seeds(p, password)  # while the hosts boot
    changed += seeded
    if fresh_storage and seeded and registry.save_seeded(storage):  # it holds just the seeds now
        changed.append("seeded registry storage kept in the cache")
    old_env = p.hosts_env.read_text() if p.hosts_env.exists() else ""
    ports = builders.recorded_ports(old_env)
    if creds.write_known_hosts(p, hs, sshkeys.ssh_ports(hs, ports)):
        changed.append(f"wrote {p.known_hosts}")
    lab_hosts.wait_ssh(p, hs, ports=ports)
    text = builders.hosts_env_text(hs, p.key, password, p.ca, known_hosts=p.known_hosts,
                                   services=platform.services_env(_services_secret(p)))
    text = builders.carry_ports(old_env, text)
    if creds.write_private(p.hosts_env, text):
        changed.append(f"wrote {p.hosts_env}")
    what = "changed: " + "; ".join(changed) if changed else "nothing changed"
    sh.log(f"up: {len(hs)} hosts, {what} ({time.monotonic() - t0:.1f}s)")
    return LabInfo(state_dir=p.state, hosts_env=p.hosts_env, key=p.key, hosts=hs,
                   registry=f"{layout.REGISTRY_HOST}:{layout.REGISTRY_PORT}", ca=p.ca,
                   changed=changed, known_hosts=p.known_hosts)


def _services_secret(p: Paths) -> str:
    """Random base of the lab's platform secrets (MySQL root, Kong's Postgres, ...), made once."""
    f = p.state / "services.password"
    if not (f.exists() and f.read_text().strip()):
        import secrets

        creds.write_private(f, secrets.token_urlsafe(18) + "\n")
    return f.read_text().strip()


def status(state_dir: Path | None = None) -> dict:
    """What exists of this lab: network, host containers (systemd/sshd), registries, image."""
    p = Paths(layout.state_dir(state_dir))
    sid = layout.state_id(p.state)
    docker_up = sh.ok(["docker", "info"])
    out: dict = {"state_dir": str(p.state), "docker": docker_up, "image": False,
                 "network": None, "hosts": [], "registry": {},
                 "hosts_env": str(p.hosts_env) if p.hosts_env.exists() else None}
    for port in registry.PORTS:
        pid = registry.pid_of(p, port)
        answer = registry.http_status(registry.url(port), p.ca) if pid and p.ca.exists() else None
        out["registry"][port] = {"pid": pid, "up": answer in (200, 401)}
    if not docker_up:
        return out
    out["image"] = any(image.image_exists(f"{layout.HOST_IMAGE_REPO}:{r}") for r in layout.RELEASES)
    net = lab_hosts.network_info()
    if net:
        cfg = (net.get("IPAM", {}).get("Config") or [{}])[0]
        out["network"] = {"name": layout.network(), "subnet": cfg.get("Subnet"),
                          "ours": lab_hosts.owner(net) == sid}
    mine = sorted((c["name"] for c in lab_hosts.lab_containers() if c["owner"] == sid and layout.is_host_name(c["name"])),
                  key=lambda n: int(n.rsplit("h", 1)[1]))
    for name in mine:
        i = int(name.rsplit("h", 1)[1])
        out["hosts"].append(lab_hosts.host_state(layout.host(i)))
    return out


def memory(state_dir: Path | None = None) -> dict:
    """Resident memory (RSS and PSS, MiB) of each running host's processes (nested dockerd and
    containers included) and of the lab's own registry/apt processes, with totals."""
    p = Paths(layout.state_dir(state_dir))
    sid = layout.state_id(p.state)
    host_pids: dict[str, int] = {}
    if sh.ok(["docker", "info"]):
        for c in lab_hosts.lab_containers():
            info = lab_hosts.container_info(c["name"]) if c["owner"] == sid else None
            if info and info["State"]["Running"]:
                host_pids[info["Config"]["Hostname"]] = int(info["State"]["Pid"])
    own = [pid for pid in [*(registry.pid_of(p, port) for port in registry.PORTS), platform.server_pid(p)] if pid]
    return procmem.measure(host_pids, own)


def down(state_dir: Path | None = None) -> None:
    """Remove this lab's containers, network, registry processes and data; keep the image cache."""
    with _machine_lock():
        _down(state_dir)


def _down(state_dir: Path | None) -> None:
    p = Paths(layout.state_dir(state_dir))
    sid = layout.state_id(p.state)
    data = layout.data_dir(p.state)
    removed: list[str] = []
    if sh.ok(["docker", "info"]):
        mine = [c["name"] for c in lab_hosts.lab_containers() if c["owner"] == sid]
        if mine:
            # a clean systemd shutdown stops nested dockerd and its containers (and cgroups)
            sh.run(["docker", "stop", "-t", "30", *mine], check=False, timeout=120)
            sh.run(["docker", "rm", "-f", "-v", *mine])
            removed += mine
    for port in registry.PORTS:
        if registry.stop(p, port):
            removed.append(f"registry :{port}")
    if platform.stop_runner_repo(p):
        removed.append(f"apt repository :{platform.APT_PORT}")
    if sh.ok(["docker", "info"]):
        net = lab_hosts.network_info()
        if net and lab_hosts.owner(net) == sid:
            sh.run(["docker", "network", "rm", layout.network()])
            removed.append(f"network {layout.network()}")
    if data.exists() and data.name == sid:
        shutil.rmtree(data)
        removed.append(str(data))
    if registry.remove_outer_ca():
        removed.append(f"outer {registry.outer_ca_path()}")
    if p.hosts_env.exists():
        p.hosts_env.unlink()
        removed.append(str(p.hosts_env))
    if p.docker_config.exists():
        shutil.rmtree(p.docker_config)
    sh.log("down: " + (", ".join(removed) if removed else "nothing to remove"))


__all__ = ["up", "status", "down"]
