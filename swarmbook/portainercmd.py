"""Pure builders for Portainer as a swarm service pinned to one manager, and for backups of
its data volume (timestamped tar + sha256, checked before any restore). The volume is read and
written by a helper image (PORTAINER_HELPER_IMAGE, the runbook's nginx): the Portainer image has
no shell or tar."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Any

from . import backupfile, containercmd
from .backupfile import parse_sidecar, sha256, sidecar_text  # noqa: F401 (portainer's names)
from .facts import Fact, engine_fact, engine_filters, engine_get_cmd
from .shell import join

SERVICE = "portainer"
VOLUME = "portainer_data"
LABEL = "portainer"  # node label node.labels.portainer == true keeps the service beside its volume
SPEC_LABEL = "swarmbook.spec"


def create_argv(*, image: str, port: int, publish_mode: str) -> list[str]:
    """The runbook's `docker service create` plus the node label constraint (spec label added by caller)."""
    publish = f"published={port},target=9000" + (",mode=host" if publish_mode == "host" else "")
    return ["docker", "service", "create", "--detach=false", "--quiet", "--name", SERVICE, "--replicas", "1",
            "--publish", publish, "--constraint", "node.role == manager",
            "--constraint", f"node.labels.{LABEL} == true",
            "--mount", f"type=volume,src={VOLUME},dst=/data",
            "--mount", "type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock", image]


def deploy_cmd(argv: list[str], spec: str, *, replace: bool) -> str:
    """Create the service from ``argv`` with its spec label; first remove the one there when ``replace``."""
    create = join(with_spec_label(argv, spec))
    return f"{join(['docker', 'service', 'rm', SERVICE])} && {create}" if replace else create


def label_add_cmd(node_id: str) -> str:
    return join(["docker", "node", "update", "--label-add", f"{LABEL}=true", node_id])


def label_rm_cmd(node_id: str) -> str:
    return join(["docker", "node", "update", "--label-rm", LABEL, node_id])


def spec_hash(argv: list[str]) -> str:
    return hashlib.sha256(json.dumps(argv).encode()).hexdigest()[:16]


def with_spec_label(argv: list[str], spec: str) -> list[str]:
    i = argv.index("--name")
    return argv[:i] + ["--label", f"{SPEC_LABEL}={spec}"] + argv[i:]


def _service(svc: dict[str, Any]) -> dict[str, Any]:
    """{spec label, replicas} of the portainer service."""
    spec = svc.get("Spec") or {}
    return {"spec": (spec.get("Labels") or {}).get(SPEC_LABEL),
            "replicas": ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0)}


def _nodes(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": n["ID"], "hostname": (n.get("Description") or {}).get("Hostname", ""),
             "addr": (n.get("Status") or {}).get("Addr", ""), "role": (n.get("Spec") or {}).get("Role", ""),
             "labels": (n.get("Spec") or {}).get("Labels") or {}} for n in nodes]


# engine API reads (one curl each; the docker CLI took four runs for these). None when absent
# (the API answers 404) or, for the nodes, when this is not a manager.
SERVICE_FACT = engine_fact("service", f"/services/{SERVICE}", _service)
NODES_FACT = engine_fact("nodes", "/nodes", _nodes)


def parse_volume(text: str, rc: int) -> bool | None:
    """True: the volume exists; False: the engine answered 404 (curl -f exits 22); None: no answer."""
    return True if rc == 0 else False if rc == 22 else None


# whether portainer_data exists on this host: `docker run -v portainer_data:...` would create it empty
VOLUME_FACT = Fact("volume", engine_get_cmd(f"/volumes/{VOLUME}"), parse_volume)


def pick_node(nodes: list[dict], wanted: str) -> dict | None:
    """The node named by hostname or address (``wanted``)."""
    for n in nodes:
        if wanted in (n["hostname"], n["addr"], n["id"]):
            return n
    return None


def has_label(node: dict) -> bool:
    return (node.get("labels") or {}).get(LABEL) == "true"


def running_cmd() -> str:
    """Running tasks of the service on this node: a JSON list of containers ('[]' when none)."""
    filters = engine_filters(label=[f"com.docker.swarm.service.name={SERVICE}"])
    return engine_get_cmd(f"/containers/json?filters={filters}")


def running(text: str, rc: int = 0) -> bool:
    """Whether :func:`running_cmd` found a running task container."""
    try:
        return rc == 0 and bool(json.loads(text or "[]"))
    except json.JSONDecodeError:
        return False


def http_ok_cmd(port: int) -> str:
    """Portainer answers on ``port`` of this node (a 2xx)."""
    return containercmd.http_ok_cmd(f"http://127.0.0.1:{port}/", timeout=3)


def ready_facts(port: int) -> list[Fact]:
    """Task running on this node and HTTP answering: probed up front, so a converged node needs no waits."""
    return [Fact("portainer_running", running_cmd(), running),
            Fact("portainer_http", http_ok_cmd(port), lambda t, rc: rc == 0)]


def scale_cmd(n: int) -> str:
    return join(["docker", "service", "scale", "--detach=false", f"{SERVICE}={n}"]) + " >/dev/null"


def backup_cmd(helper: str) -> str:
    """Tar the volume on the host, then print its sha256 and the tar as base64 (one line each).
    Every helper run names its entrypoint: an image's own (nginx's prints notes) stays out of the tar."""
    tar = join(["docker", "run", "--rm", "--entrypoint", "tar", "-v", f"{VOLUME}:/data:ro", helper,
                "-C", "/", "-cf", "-", "data"])
    return (f"tmp=$(mktemp) && trap 'rm -f \"$tmp\"' EXIT && {tar} > \"$tmp\" && "
            "sha256sum \"$tmp\" | cut -d' ' -f1 && base64 -w0 \"$tmp\" && echo")


def restore_cmd(helper: str) -> str:
    """Empty the volume and unpack the tar read from stdin into it."""
    inner = "rm -rf /data/* /data/.[!.]* /data/..?* && tar -C / -xf -"  # (unmatched globs stay literal: rm -f ignores them)
    return join(["docker", "run", "--rm", "-i", "--entrypoint", "sh", "-v", f"{VOLUME}:/data", helper, "-c", inner])


def manifest_cmd(helper: str) -> str:
    """sha256 of every file in the volume, as `sha256sum` prints it (sorted by path)."""
    inner = "cd / && find data -type f | sort | xargs -r sha256sum"
    return join(["docker", "run", "--rm", "--entrypoint", "sh", "-v", f"{VOLUME}:/data:ro", helper, "-c", inner])


def backup_name(host: str, stamp: str) -> str:
    return backupfile.name("portainer", host, stamp, "tar")


def check_tar(data: bytes) -> str:
    """'' when ``data`` is a tar of data/ only (no absolute paths, no '..', no devices)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for m in tf.getmembers():
                name = m.name.lstrip("./") if m.name.startswith("./") else m.name
                if name.startswith("/") or ".." in name.split("/") or not (name == "data" or name.startswith("data/")):
                    return f"unexpected member {m.name!r}"
                if m.isdev():
                    return f"device file {m.name!r}"
    except tarfile.TarError as exc:
        return f"not a tar file ({exc})"
    return ""


def manifest(data: bytes) -> str:
    """The same listing as :func:`manifest_cmd`, computed from a backup tar."""
    lines = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for m in tf.getmembers():
            if m.isfile():
                f = tf.extractfile(m)
                lines.append((m.name.lstrip("./") if m.name.startswith("./") else m.name,
                              hashlib.sha256(f.read() if f else b"").hexdigest()))
    return "".join(f"{d}  {n}\n" for n, d in sorted(lines))
