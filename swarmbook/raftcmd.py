"""Pure builders and parsers for backing up and restoring a manager's swarm state (the raft
log, certificates and keys under /var/lib/docker/swarm), after Docker's admin guide ("Back up
the swarm", "Recover from disaster"): stop the engine, archive the folder, start it.

The archive travels as base64 on one line after its sha256 line (checked here, then again by
the .sha256 file the backup keeps). The swarm's unlock key (autolock) is read only when the
swarm is locked-on-restart and travels on stdout/stdin only, never in argv.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

from .facts import Fact, engine_fact, engine_get_cmd
from .shell import join

SWARM_DIR = "/var/lib/docker/swarm"


def stop_engine_cmd() -> str:
    """Stop dockerd and its socket (a socket left listening would start the engine again)."""
    return "systemctl stop docker.socket docker.service"


def start_engine_cmd() -> str:
    """Start the engine again (the start rate limit cleared first, as every engine restart)."""
    return "systemctl reset-failed docker.service 2>/dev/null; systemctl start docker.socket docker.service"


def archive_cmd() -> str:
    """With the engine stopped: sha256 of a gzip'ed tar of the swarm folder, then the tar as base64."""
    return ("f=$(mktemp) && tar -C /var/lib/docker -czf \"$f\" swarm && sha256sum \"$f\" | cut -d' ' -f1 && "
            "base64 -w0 \"$f\"; rc=$?; rm -f \"$f\"; exit $rc")


def replace_cmd() -> str:
    """With the engine stopped: the swarm folder replaced by the tar arriving on stdin."""
    return f"rm -rf {SWARM_DIR} && mkdir -p /var/lib/docker && tar -C /var/lib/docker -xzf - && test -d {SWARM_DIR}"


UNLOCK_KEY_CMD = "docker swarm unlock-key -q"
ROTATE_KEY_CMD = "docker swarm unlock-key --rotate -q"


def autolock_cmd(on: bool) -> str:
    """Turn autolock on or off (the key is read afterwards with UNLOCK_KEY_CMD, not from this output)."""
    return join(["docker", "swarm", "update", f"--autolock={'true' if on else 'false'}"])


def autolock_of(info: dict[str, Any] | None) -> tuple[bool, str]:
    """(autolock on, cluster id) from the engine's /info."""
    sw = (info or {}).get("Swarm") or {}
    cluster = sw.get("Cluster") or {}
    return bool(((cluster.get("Spec") or {}).get("EncryptionConfig") or {}).get("AutoLockManagers")), cluster.get("ID", "")


def unlock_cmd() -> str:
    """``docker swarm unlock`` reads the key from stdin (a terminal prompt otherwise)."""
    return "docker swarm unlock"


def force_new_cluster_cmd(advertise: str, *, autolock: bool = False) -> str:
    """A one-manager cluster from the restored state: services, configs, secrets, networks and
    node labels kept; every other manager dropped (they join again). ``autolock``: keep it on
    (the init request's spec replaces the cluster's autolock setting: without the flag a
    restored autolocked swarm came back unlocked on 28.5; with it the key stays the same)."""
    return join(["docker", "swarm", "init", "--force-new-cluster", *(["--autolock"] if autolock else []),
                 "--advertise-addr", advertise])


NODES = engine_fact("nodes", "/nodes", lambda nodes: nodes)  # every node, as a manager sees them (None: not one)
NODES_ANSWER = Fact("manager", engine_get_cmd("/nodes"), lambda t, rc: rc == 0 and t.lstrip().startswith("["))


def quorum(nodes: list[dict[str, Any]]) -> tuple[int, int]:
    """(managers, reachable managers) from the engine API's /nodes."""
    managers = [n for n in nodes if n.get("ManagerStatus")]
    up = [n for n in managers if (n.get("ManagerStatus") or {}).get("Reachability") == "reachable"]
    return len(managers), len(up)


def loses_quorum(managers: int, reachable: int) -> bool:
    """Would stopping one reachable manager leave fewer than a majority of ``managers``?"""
    return reachable - 1 < managers // 2 + 1


def member(data: bytes, name: str) -> bytes | None:
    """One regular file of a gzip'ed tar (None when it is not there)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        try:
            m = tf.getmember(name)
        except KeyError:
            return None
        f = tf.extractfile(m) if m.isfile() else None
        return f.read() if f else None


def archive_origin(data: bytes) -> str:
    """The address the backed-up manager advertised (swarm/docker-state.json), '' when unknown:
    swarm.restore puts the state back on that host when hosts.env lists it, so the node keeps
    its identity (and its labels) on the machine they belong to."""
    import json

    try:
        state = json.loads(member(data, "swarm/docker-state.json") or b"{}")
    except ValueError:
        return ""
    addr = (state.get("AdvertiseAddr") or state.get("LocalAddr") or "") if isinstance(state, dict) else ""
    return addr.rsplit(":", 1)[0].strip("[]") if addr.count(":") == 1 or addr.startswith("[") else addr


def check_archive(data: bytes) -> str:
    """'' when ``data`` is a gzip'ed tar of swarm/ only (no absolute paths, no '..', no devices)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
            names = []
            for m in tf.getmembers():
                if m.name.startswith("/") or ".." in m.name.split("/") or not (m.name == "swarm" or m.name.startswith("swarm/")):
                    return f"unexpected member {m.name!r}"
                if m.isdev():
                    return f"device file {m.name!r}"
                names.append(m.name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        return f"not a gzip'ed tar ({exc})"
    if "swarm/raft" not in names and not any(n.startswith("swarm/raft/") for n in names):
        return "no swarm/raft in it (not a manager's swarm folder)"
    return ""
