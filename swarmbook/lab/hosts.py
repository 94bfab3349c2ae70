"""Lab network and host containers in the outer docker engine."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from . import builders, creds, layout, sh, sshkeys
from .layout import LabError, LabHost, Paths

SSH_OPTS = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3"]
CA_IN_HOST = "/usr/local/share/ca-certificates/swarmbook-lab-ca.crt"


def _inspect(kind: str, name: str) -> dict | None:
    cp = sh.run(["docker", kind, "inspect", name], check=False)
    if cp.returncode != 0:
        return None
    data = json.loads(cp.stdout or "[]")
    return data[0] if data else None


def network_info() -> dict | None:
    return _inspect("network", layout.network())


def container_info(name: str) -> dict | None:
    return _inspect("container", name)


def owner(info: dict | None) -> str | None:
    """State id label of a lab container/network inspect result."""
    if not info:
        return None
    labels = info.get("Labels") or (info.get("Config") or {}).get("Labels") or {}
    return labels.get(layout.STATE_LABEL)


def lab_containers() -> list[dict]:
    """All containers any swarmbook lab made (running or not)."""
    cp = sh.run(["docker", "ps", "-a", "--filter", f"label={layout.LABEL}=1",
                 "--format", "{{json .}}"])
    out = []
    for line in cp.stdout.splitlines():
        row = json.loads(line)
        labels = row.get("Labels", "")
        out.append({"name": row["Names"], "state": row["State"],
                    "owner": _label(labels, layout.STATE_LABEL),
                    "dir": _label(labels, layout.DIR_LABEL)})
    return out


def _label(labels: str, key: str) -> str | None:
    for kv in labels.split(","):
        k, _, v = kv.partition("=")
        if k == key:
            return v
    return None


def clear_foreign(sid: str) -> list[str]:
    """Another checkout's lab of the same instance holds our names/addresses: remove it if
    stopped, else refuse. Labs of other instances (SWARMBOOK_LAB_INSTANCE) are left alone.

    Returns what was removed; the caller stops that lab's registries (see foreign_dirs).
    """
    done = []
    foreign = [c for c in lab_containers() if c["owner"] != sid and layout.is_host_name(c["name"])]
    running = [c for c in foreign if c["state"] == "running"]
    if running:
        dirs = sorted({c["dir"] or "?" for c in running})
        raise LabError(
            f"another swarmbook lab is running ({', '.join(c['name'] for c in running)}; state dir "
            f"{', '.join(dirs)}): run `SWARMBOOK_LAB_DIR=<that dir> inv lab.down` first, or use "
            f"another SWARMBOOK_LAB_INSTANCE")
    for c in foreign:
        sh.run(["docker", "rm", "-f", "-v", c["name"]])
        done.append(f"removed stale {c['name']}")
    net = network_info()
    if net and owner(net) != sid:
        if net.get("Containers"):
            raise LabError(
                f"docker network {layout.network()} is in use by containers of another lab")
        sh.run(["docker", "network", "rm", layout.network()])
        done.append(f"removed stale network {layout.network()}")
    return done


def ensure_network(state: Path) -> list[str]:
    if network_info():
        return []
    sh.run(builders.network_create_argv(state))
    return [f"network {layout.network()} created"]


def ensure_host(h: LabHost, p: Paths, host_data: Path, refresh: bool = False,
                new_keys: bool = False) -> list[str]:
    """Create (docker create + cp keys/CA + start) or start the host container as needed.

    refresh: the lab key or CA was made anew; put them into an existing host too.
    new_keys: this host's SSH host keys were made anew; put them into an existing host too
    (and restart its sshd when it runs).
    """
    engine = layout.ENGINES[h.engine]
    info = container_info(h.name)
    done = []
    if info and (info["Config"]["Image"] != engine.image or engine_of(info) != h.engine):
        # another engine asked for (or not ours to keep: clear_foreign already ran): recreate
        sh.run(["docker", "rm", "-f", h.name])
        done.append(f"{h.hostname} removed (was {engine_of(info) or info['Config']['Image']})")
        info = None
    if info is None:
        shutil.rmtree(host_data, ignore_errors=True)  # no nested docker state from a previous life
        (host_data / "docker").mkdir(parents=True, exist_ok=True)
        sh.run(builders.host_create_argv(h, host_data, p.state, engine.image))
        _inject(h, p)
        sh.run(["docker", "start", h.name])
        if engine.sid:
            enable_sid(h.name)
        return done + [f"{h.hostname} created ({_engine_text(engine)})"]
    if refresh or new_keys:
        _inject(h, p)
        done.append(f"{h.hostname} given the new " + ("key/CA" if refresh else "host keys"))
    if not info["State"]["Running"]:
        sh.run(["docker", "start", h.name])  # the boot unit runs update-ca-certificates
        done.append(f"{h.hostname} started")
    else:
        if refresh:
            sh.run(["docker", "exec", h.name, "update-ca-certificates"])
        if new_keys:
            sh.run(["docker", "exec", h.name, "systemctl", "restart", "ssh"])
    return done


def engine_of(info: dict | None) -> str:
    """The engine generation label of a lab host's inspect result ("" for hosts made before it)."""
    return ((info or {}).get("Config", {}).get("Labels") or {}).get(layout.ENGINE_LABEL, "")


def _engine_text(engine: layout.Engine) -> str:
    return f"Debian {engine.release}, Docker {engine.name}" + (" from sid, pinned" if engine.sid else "")


def enable_sid(name: str) -> None:
    """A 28.5 host: sid's source and pin, kept in the image, into the host's apt configuration."""
    from .image import SID_DIR

    for src, dst in (("sid.list", builders.SID_LIST), ("sid.pref", builders.SID_PIN)):
        sh.run(["docker", "exec", name, "cp", f"{SID_DIR}/{src}", dst])


def engines_now(hs: list[LabHost]) -> list[LabHost]:
    """``hs`` with each host's engine: the one its container was made for, else the default."""
    out = []
    for h in hs:
        name = engine_of(container_info(h.name)) or layout.default_engine().name
        out.append(LabHost(h.name, h.hostname, h.addr, name))
    return out


def _inject(h: LabHost, p: Paths) -> None:
    """Per-lab files into a created (not yet started) container: root's key, the lab CA and
    the host's own SSH host keys (the boot unit's `ssh-keygen -A` then finds keys and skips)."""
    sh.run(["docker", "cp", str(p.pubkey), f"{h.name}:/root/.ssh/authorized_keys"])
    sh.run(["docker", "cp", str(p.ca), f"{h.name}:{CA_IN_HOST}"])
    made = int(p.host_keys(h.hostname).stat().st_mtime)
    sh.run(["docker", "cp", "-", f"{h.name}:/etc/ssh"],
           input=sshkeys.keys_tar(creds.host_key_files(p, h.hostname), mtime=made))


def remove_extra(keep: int, sid: str, data: Path) -> list[str]:
    """Remove this lab's hosts numbered above ``keep`` (up(hosts=2) after up(hosts=3))."""
    done = []
    wanted = {h.name for h in layout.hosts(keep)}
    for c in lab_containers():
        if c["owner"] == sid and layout.is_host_name(c["name"]) and c["name"] not in wanted:
            sh.run(["docker", "rm", "-f", "-v", c["name"]])
            shutil.rmtree(data / c["name"].rsplit("-", 1)[1], ignore_errors=True)
            done.append(f"removed {c['name']}")
    return done


def ssh_argv(p: Paths, h: LabHost, *cmd: str, port: int = 22) -> list[str]:
    return ["ssh", "-i", str(p.key), *SSH_OPTS, "-p", str(port), f"root@{h.addr}", *cmd]


def wait_ssh(p: Paths, hs: list[LabHost], timeout: float = 90, ports: dict[str, int] | None = None) -> None:
    """Bounded wait until every host's sshd accepts the lab key (on its recorded port)."""
    ports = ports or {}
    deadline = time.monotonic() + timeout
    pending = list(hs)
    while pending:
        pending = [h for h in pending if not sh.ok(ssh_argv(p, h, "true", port=ports.get(h.addr, 22)), timeout=15)]
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{h.hostname} ({h.addr})" for h in pending)
            raise LabError(
                f"sshd did not accept the lab key within {timeout:.0f}s on: {names}; see "
                f"`docker exec {pending[0].name} journalctl -u ssh`; a broken host is "
                f"recreated by `docker rm -f {pending[0].name}` and `inv lab.up`")
        time.sleep(1)


def host_state(h: LabHost) -> dict:
    info = container_info(h.name)
    st: dict = {"name": h.name, "hostname": h.hostname, "addr": h.addr,
                "container": info["State"]["Status"] if info else "missing",
                "systemd": None, "sshd": None, "engine_wanted": engine_of(info) or None,
                "release": None, "engine": None}
    if info and info["State"]["Running"]:
        rel = sh.run(["docker", "exec", h.name, "sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"],
                     check=False)
        st["release"] = rel.stdout.strip() or None
        ver = sh.run(["docker", "exec", h.name, "dockerd", "--version"], check=False)
        st["engine"] = ver.stdout.split(",")[0].replace("Docker version ", "") if ver.returncode == 0 else "not installed"
        sysd = sh.run(["docker", "exec", h.name, "systemctl", "is-system-running"], check=False)
        st["systemd"] = sysd.stdout.strip() or sysd.stderr.strip()
        ssh = sh.run(["docker", "exec", h.name, "systemctl", "is-active", "ssh"], check=False)
        st["sshd"] = ssh.stdout.strip()
    return st
