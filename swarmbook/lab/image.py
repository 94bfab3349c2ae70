"""The slow part, done once and cached: root file systems (debootstrap) and docker images.

Cache dir (survives `down`, shared across checkouts):
  host-base-<hash>.tar       per release: debootstrap + updates + pre-downloaded Docker .debs
                             and apt lists (trixie: its own engine and sid's, see below)
  debian-minbase-<hash>.tar  plain minbase rootfs for the library/debian:bookworm seed image
Images in the outer engine: swarmbook-lab-base:<hash> -> swarmbook-lab-host:<release> (docker
build of builders.host_image_context), swarmbook-lab-seed/{busybox,debian}.

The trixie image serves two engines: 26.1 (trixie's own) and 28.5 (sid's, pinned). Its build
also downloads sid's engine packages and keeps sid's apt lists, and leaves the sid source and
its pin in /usr/share/swarmbook-lab/; a 28.5 host gets them copied into /etc/apt at creation
(hosts.enable_sid), so `apt-get install docker.io` there takes 28.5 as a production host
with Docker's repository takes the newest engine.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import builders, layout, sh
from .layout import LabError

STAGE1_VERSION = "1"  # bump when the chroot steps below change


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


SID_STEPS = "2"  # bump when _sid_steps changes what it leaves in the image
SID_DIR = "/usr/share/swarmbook-lab"  # sid.list and sid.pref, inactive until a 28.5 host copies them


def host_base_hash(release: str = builders.SUITE) -> str:
    return _hash(STAGE1_VERSION, builders.debootstrap_argv(Path("/x"), builders.HOST_PACKAGES, release),
                 builders.sources_list_text(release), builders.engine_packages(release),
                 (builders.SID_SOURCE, SID_STEPS) if _offers_sid(release) else "")


def debian_seed_hash() -> str:
    return _hash(STAGE1_VERSION, builders.debootstrap_argv(Path("/x"), ()),
                 builders.sources_list_text())


def host_recipe(release: str = builders.SUITE) -> str:
    ctx = builders.host_image_context(f"swarmbook-lab-base:{host_base_hash(release)}", "")
    return _hash(ctx)


def _offers_sid(release: str) -> bool:
    return any(e.sid and e.release == release for e in layout.ENGINES.values())


@contextlib.contextmanager
def build_lock():
    """One image build at a time per machine (lab instances share the cache and the engine)."""
    cache = layout.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".build.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def image_exists(ref: str) -> bool:
    return sh.ok(["docker", "image", "inspect", ref], quiet=True)


def image_label(ref: str, label: str) -> str | None:
    cp = sh.run(["docker", "image", "inspect", "--format",
                 "{{json .Config.Labels}}", ref], check=False)
    if cp.returncode != 0:
        return None
    return (json.loads(cp.stdout or "null") or {}).get(label)


def _chroot_steps(root: Path, *, download_docker: bool, release: str = builders.SUITE) -> None:
    """apt setup inside a fresh debootstrap tree (needs network to the Debian mirror)."""
    (root / "etc/apt/sources.list").write_text(builders.sources_list_text(release))
    (root / "etc/apt/apt.conf.d/99swarmbook-lab").write_text('Acquire::Languages "none";\n')
    policy = root / "usr/sbin/policy-rc.d"  # never start services inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = ["env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"]
    sh.run(["mount", "-t", "proc", "proc", str(root / "proc")])
    try:
        ch = ["chroot", str(root)] + env
        sh.run(ch + ["apt-get", "update", "-q"], timeout=600)
        sh.run(ch + ["apt-get", "-y", "-q", "dist-upgrade"], timeout=900)
        sh.run(ch + ["apt-get", "clean"])
        if download_docker:
            # `apt-get install -y docker.io` in a lab host then works fast and even offline
            sh.run(ch + ["apt-get", "install", "-y", "-q", "--download-only",
                         *builders.engine_packages(release)], timeout=900)
            if _offers_sid(release):
                _sid_steps(root, ch)
        else:
            for p in (root / "var/lib/apt/lists").glob("*_*"):
                p.unlink()
    finally:
        sh.run(["umount", "-l", str(root / "proc")], check=False)
        policy.unlink(missing_ok=True)


def _sid_steps(root: Path, ch: list[str]) -> None:
    """sid's engine beside the release's: lists and .debs downloaded, source and pin kept aside."""
    active = root / builders.SID_LIST.lstrip("/")
    active.write_text(builders.SID_SOURCE)
    try:
        sh.run(ch + ["apt-get", "update", "-q"], timeout=600)
        wanted = [f"{p}/sid" for p in builders.engine_packages("sid")]
        sim = sh.run(ch + ["apt-get", "install", "-s", "-q", "--no-install-recommends", *wanted],
                     timeout=300).stdout
        engine_set = builders.sid_engine_set(sim)
        if "docker.io" not in engine_set:
            raise LabError(f"sid offers no docker.io newer than this release's: {sim[-500:]}")
        sh.run(ch + ["apt-get", "install", "-y", "-q", "--download-only", *wanted], timeout=900)
    finally:
        active.unlink(missing_ok=True)  # its lists stay: a 28.5 host needs no `apt-get update`
    keep = root / SID_DIR.lstrip("/")
    keep.mkdir(parents=True, exist_ok=True)
    (keep / "sid.list").write_text(builders.SID_SOURCE)
    (keep / "sid.pref").write_text(builders.sid_pin_text(engine_set))


def _rootfs_tarball(name: str, include: tuple[str, ...], *, download_docker: bool,
                    release: str = builders.SUITE) -> Path:
    """Build (once) a debootstrap tarball in the cache dir; returns its path."""
    cache = layout.cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / name
    if tar.exists():
        return tar
    t0 = time.monotonic()
    sh.log(f"building {tar} (debootstrap, about 2 minutes, once per machine)")
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        root = work / "root"
        sh.run(builders.debootstrap_argv(root, include, release), timeout=1800)
        _chroot_steps(root, download_docker=download_docker, release=release)
        partial = tar.with_suffix(".partial")
        sh.run(["tar", "--numeric-owner", "--xattrs", "-C", str(root), "-cf", str(partial), "."])
        os.replace(partial, tar)
    finally:
        sh.run(["umount", "-l", str(work / "root/proc")], check=False)
        shutil.rmtree(work, ignore_errors=True)
    sh.log(f"built {tar.name} in {time.monotonic() - t0:.0f}s")
    return tar


def _import(tar: Path, ref: str, changes: tuple[str, ...] = ()) -> None:
    sh.run(builders.import_argv(ref, changes, source=str(tar)), timeout=900)


def ensure_host_image(release: str = builders.SUITE) -> bool:
    """swarmbook-lab-host:<release> at the current recipe. True when something was built."""
    ref = f"{layout.HOST_IMAGE_REPO}:{release}"
    recipe = host_recipe(release)
    if image_label(ref, f"{layout.LABEL}.recipe") == recipe:
        return False
    base = f"swarmbook-lab-base:{host_base_hash(release)}"
    if not image_exists(base):
        tar = _rootfs_tarball(f"host-base-{host_base_hash(release)}.tar", builders.HOST_PACKAGES,
                              download_docker=True, release=release)
        _import(tar, base)
    old_id = sh.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref],
                    check=False).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="swarmbook-lab-ctx-") as ctx:
        for name, text in builders.host_image_context(base, recipe).items():
            Path(ctx, name).write_text(text)
        sh.log(f"building {ref}")
        sh.run(["docker", "build", "-q", "-t", ref, ctx],
               env={"DOCKER_BUILDKIT": "0"}, timeout=900)
    if old_id:  # the previous recipe's image, unless a host container still uses it
        sh.run(["docker", "image", "rm", old_id], check=False)
    return True


SEED_DEBIAN = "swarmbook-lab-seed/debian:bookworm"
SEED_BUSYBOX = "swarmbook-lab-seed/busybox:latest"


def ensure_seed_images() -> list[str]:
    """Local seed images (no public registry is reachable). Returns the refs built now."""
    built = []
    if not image_exists(SEED_DEBIAN):
        tar = _rootfs_tarball(f"debian-minbase-{debian_seed_hash()}.tar", (), download_docker=False)
        _import(tar, SEED_DEBIAN, ('CMD ["bash"]',))
        built.append(SEED_DEBIAN)
    if not image_exists(SEED_BUSYBOX):
        _build_busybox(SEED_BUSYBOX)
        built.append(SEED_BUSYBOX)
    return built


def _build_busybox(ref: str) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    applets = sh.run([busybox, "--list"]).stdout.split()
    with tempfile.TemporaryDirectory(prefix="swarmbook-lab-busybox-") as d:
        root = Path(d)
        for sub in ("bin", "etc", "tmp", "root", "var", "proc", "sys", "dev"):
            (root / sub).mkdir()
        (root / "tmp").chmod(0o1777)
        shutil.copy2(busybox, root / "bin/busybox")
        for rel, text in builders.busybox_tree(applets).items():
            p = root / rel
            if text is None:
                p.symlink_to("busybox")
            else:
                p.write_text(text)
        sh.pipe(["tar", "--numeric-owner", "-C", str(root), "-c", "."],
                builders.import_argv(ref, ('CMD ["sh"]',)))
