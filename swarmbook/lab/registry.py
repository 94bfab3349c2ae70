"""The lab registry (auth, :5000) and its read-only mirror (:5001): Debian's docker-registry
run as background processes on the outer side of the lab bridge, plus the seed images."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from . import builders, creds, image, layout, sh
from .creds import write_private
from .layout import LabError, Paths

PORTS = (layout.REGISTRY_PORT, layout.MIRROR_PORT)
OUTER_CERTS_D = Path("/etc/docker/certs.d")
SEEDS = {  # registry repo:tag -> local seed image
    "library/busybox:latest": image.SEED_BUSYBOX,
    "library/debian:bookworm": image.SEED_DEBIAN,
}


def pid_of(p: Paths, port: int) -> int | None:
    """PID of this lab's registry on port, if that process is alive (checked via cmdline)."""
    try:
        pid = int(p.registry_pid(port).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if str(p.registry_config(port)).encode() in cmdline else None


def _alive(pid: int) -> bool:
    """Running (a zombie has an empty cmdline)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


def http_status(url: str, ca: Path, auth: tuple[str, str] | None = None, method: str = "GET",
                headers: dict[str, str] | None = None, timeout: float = 3) -> int | None:
    """HTTP status of an HTTPS request verified against the lab CA; None if no answer."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    ctx = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def url(port: int, path: str = "/v2/") -> str:
    return f"https://{layout.gateway()}:{port}{path}"


def ensure_running(p: Paths, storage: Path, password: str) -> list[str]:
    """Write configs and start whichever registry process is not running."""
    done = []
    storage.mkdir(parents=True, exist_ok=True)
    secret_file = p.state / "registry.secret"
    if not secret_file.exists():
        write_private(secret_file, os.urandom(24).hex() + "\n")
    secret = secret_file.read_text().strip()
    for port in PORTS:
        main = port == layout.REGISTRY_PORT
        text = builders.registry_config_text(
            port=port, storage=storage, cert=p.cert, key=p.cert_key, secret=secret,
            htpasswd=p.htpasswd if main else None, readonly=not main)
        rewritten = write_private(p.registry_config(port), text)
        pid = pid_of(p, port)
        if pid and rewritten:
            stop(p, port)
            pid = None
        if pid is None:
            _start(p, port)
            done.append(f"registry :{port} started")
    for port in PORTS:
        _wait_answering(p, port)
    return done


def _start(p: Paths, port: int) -> None:
    # setsid -f detaches the server from us; the tiny sh records its own PID, then execs it.
    argv = ["setsid", "-f", "sh", "-c", 'echo $$ >"$0"; exec "$@"', str(p.registry_pid(port)),
            *builders.registry_argv(p.registry_config(port))]
    p.registry_pid(port).unlink(missing_ok=True)
    with open(p.registry_log(port), "ab") as logf:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, check=True)
    for _ in range(50):
        if pid_of(p, port):
            return
        time.sleep(0.1)
    raise LabError(f"registry :{port} did not start; see {p.registry_log(port)}")


def _wait_answering(p: Paths, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_status(url(port), p.ca) in (200, 401):
            return
        if pid_of(p, port) is None:
            break
        time.sleep(0.2)
    raise LabError(f"registry :{port} does not answer on {url(port)}; see {p.registry_log(port)}")


def stop(p: Paths, port: int) -> bool:
    pid = pid_of(p, port)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    p.registry_pid(port).unlink(missing_ok=True)
    return pid is not None


def foreign_pids(own: Paths) -> list[tuple[int, str]]:
    """Registry processes of other lab state dirs on our addresses (same instance only)."""
    names = {own.registry_config(port).name for port in PORTS}
    ours = tuple(f'"{layout.gateway()}:{port}"' for port in PORTS)
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode() for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if (len(argv) == 3 and argv[0].endswith("docker-registry") and argv[1] == "serve"
                and Path(argv[2]).name in names
                and Path(argv[2]).parent != own.state and _listens_on(Path(argv[2]), ours)):
            found.append((int(proc.name), argv[2]))
    return found


def _listens_on(config: Path, addrs: tuple[str, ...]) -> bool:
    """Whether a registry config's ``addr:`` is one of ours (unreadable: assume it is)."""
    try:
        text = config.read_text()
    except OSError:
        return True
    return any(f"addr: {a}" in text for a in addrs)


def stop_foreign(own: Paths) -> list[str]:
    done = []
    for pid, config in foreign_pids(own):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(50):
            if not _alive(pid):
                break
            time.sleep(0.1)
        done.append(f"stopped stale registry {config}")
    return done


def has_tag(p: Paths, password: str, repo_tag: str) -> bool:
    repo, tag = repo_tag.rsplit(":", 1)
    accept = ("application/vnd.docker.distribution.manifest.v2+json,"
              "application/vnd.oci.image.manifest.v1+json")
    return http_status(url(layout.REGISTRY_PORT, f"/v2/{repo}/manifests/{tag}"), p.ca,
                       auth=(layout.REGISTRY_USER, password), method="HEAD",
                       headers={"Accept": accept}) == 200


def outer_ca_path() -> Path:
    """Where the outer docker engine looks for the CA of the lab registry (for pushes)."""
    return OUTER_CERTS_D / f"{layout.gateway()}:{layout.REGISTRY_PORT}" / "ca.crt"


def remove_outer_ca() -> bool:
    """Remove the outer certs.d entry of the lab registry's fixed address (only the lab uses it)."""
    ca = outer_ca_path()
    if not ca.exists():
        return False
    ca.unlink()
    try:
        ca.parent.rmdir()
    except OSError:
        pass
    return True


# -- a copy of the seeded storage in the cache: up() after down() restores it instead of pushing

def seed_images() -> dict[str, str]:
    """registry repo:tag -> local image, for everything up() seeds the registry with."""
    from . import platform

    return {**SEEDS, **{rt: platform.local_ref(rt) for rt in platform.contexts()}}


def seed_key(image_ids: list[str]) -> str:
    """Names a storage snapshot by the exact local images in it (their IDs, in seed order)."""
    return hashlib.sha256("\n".join(image_ids).encode()).hexdigest()[:16]


def _seed_snapshot() -> Path | None:
    """The cache folder for the current seed images (None when one of them is not built yet)."""
    refs = list(seed_images().values())
    cp = sh.run(["docker", "image", "inspect", "--format", "{{.Id}}", *refs], check=False, quiet=True)
    ids = cp.stdout.split()
    if cp.returncode != 0 or len(ids) != len(refs):
        return None
    return layout.cache_dir() / f"registry-seeded-{seed_key(ids)}"


def storage_empty(storage: Path) -> bool:
    """A registry storage with nothing in it yet (absent or an empty folder)."""
    return not (storage.exists() and any(storage.iterdir()))


def restore_seeded(storage: Path) -> bool:
    """Fill an empty registry storage from the cached copy of a seeded one (0.2 s for ~250 MB,
    where pushing the same images takes a minute or more). True when it did."""
    if not storage_empty(storage):
        return False
    snap = _seed_snapshot()
    if snap is None or not snap.is_dir():
        return False
    storage.parent.mkdir(parents=True, exist_ok=True)
    tmp = storage.with_name(storage.name + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    sh.run(["cp", "-a", str(snap), str(tmp)])
    if storage.exists():
        storage.rmdir()
    tmp.rename(storage)
    return True


def save_seeded(storage: Path) -> bool:
    """Keep a copy of a storage that holds just the seed images (right after a fresh seeding)."""
    snap = _seed_snapshot()
    if snap is None or snap.is_dir() or not storage.is_dir():
        return False
    snap.parent.mkdir(parents=True, exist_ok=True)
    tmp = snap.with_name(snap.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    sh.run(["cp", "-a", str(storage), str(tmp)])
    try:
        tmp.rename(snap)
    except OSError:  # another lab instance saved the same seed set first
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    for old in snap.parent.glob("registry-seeded-*"):  # older seed sets are of no use any more
        if old != snap and old.is_dir() and not old.name.count(".tmp"):
            shutil.rmtree(old, ignore_errors=True)
    return True


def ensure_seeds(p: Paths, password: str) -> list[str]:
    """Push the seed and platform images unless the registry already has each tag."""
    from . import platform

    missing = [rt for rt in SEEDS if not has_tag(p, password, rt)]
    endpoint = f"{layout.gateway()}:{layout.REGISTRY_PORT}"
    env = {"DOCKER_CONFIG": str(p.docker_config)}
    done = _push_seeds(p, password, missing, endpoint, env) if missing else []
    with image.build_lock():  # two lab instances may build the same platform images
        done += platform.ensure_pushed(p, password, endpoint, env,
                                       login=lambda: _login(p, password, endpoint, env))
    return done


def _login(p: Paths, password: str, endpoint: str, env: dict[str, str]) -> None:
    outer_ca = outer_ca_path()
    outer_ca.parent.mkdir(parents=True, exist_ok=True)
    ca_text = p.ca.read_text()
    if not outer_ca.exists() or outer_ca.read_text() != ca_text:
        outer_ca.write_text(ca_text)
    p.docker_config.mkdir(mode=0o700, exist_ok=True)
    sh.run(["docker", "login", endpoint, "-u", layout.REGISTRY_USER, "--password-stdin"],
           input=password + "\n", env=env)


def _push_seeds(p: Paths, password: str, missing: list[str], endpoint: str, env: dict[str, str]) -> list[str]:
    _login(p, password, endpoint, env)
    image.ensure_seed_images()
    return push_all([(SEEDS[rt], rt) for rt in missing], endpoint, env)


def push_all(pairs: list[tuple[str, str]], endpoint: str, env: dict[str, str],
             on_pushed: Callable[[str], None] | None = None) -> list[str]:
    """Tag each local image as ``endpoint/repo:tag`` and push it; ``on_pushed(repo:tag)`` as each
    one lands. One at a time on purpose: the platform images share a ~600 MB base layer, which
    a sequential push uploads once and then mounts; pushed side by side it was uploaded by
    every push at once (measured: 90 s for up() after down(), four at a time)."""
    for local, rt in pairs:
        target = f"{endpoint}/{rt}"
        sh.run(["docker", "tag", local, target])
        sh.run(["docker", "push", target], env=env, timeout=900)
        if on_pushed:
            on_pushed(rt)
    return [f"pushed {rt}" for _, rt in pairs]



def set_password(p: Paths, password: str) -> bool:
    """Change the registry password (rehearses the runbook's "registry password changed"):
    rewrite htpasswd and restart the authenticating registry. False when it already was."""
    if not creds.ensure_htpasswd(p, layout.REGISTRY_USER, password):
        return False
    stop(p, layout.REGISTRY_PORT)
    _start(p, layout.REGISTRY_PORT)
    _wait_answering(p, layout.REGISTRY_PORT)
    return True
