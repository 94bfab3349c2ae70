"""Names, addresses and paths of the lab: constants and pure functions only."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# Instance 0 (the default) uses exactly these; instance k > 0 (SWARMBOOK_LAB_INSTANCE=k) uses
# network swarmbook-lab{k}, 172.29.(100+k).0/24 and state dir .lab{k}: see the functions below.
NETWORK = "swarmbook-lab"  # docker network name and its bridge interface name
SUBNET = "172.29.100.0/24"
GATEWAY = "172.29.100.1"  # outer side of the bridge: the registries listen here
MAX_INSTANCE = 99  # 172.29.199.0/24 at most; bridge names stay under 15 characters
REGISTRY_HOST = "registry.lab"
REGISTRY_PORT = 5000
MIRROR_PORT = 5001
REGISTRY_USER = "swarmbook"
LABEL = "swarmbook.lab"  # every container/network the lab makes has LABEL=1
STATE_LABEL = "swarmbook.lab.state"  # ... and the id of the state dir it belongs to
DIR_LABEL = "swarmbook.lab.dir"  # ... and that state dir's path (for messages and cleanup)
ENGINE_LABEL = "swarmbook.lab.engine"  # ... and, on a host, the engine generation it was made for
HOST_IMAGE_REPO = "swarmbook-lab-host"  # one image per Debian release: swarmbook-lab-host:<release>
HOST_IMAGE = f"{HOST_IMAGE_REPO}:bookworm"
MAX_HOSTS = 200

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path("/var/cache/swarmbook-lab")
DEFAULT_DATA = Path("/var/lib/swarmbook-lab")


class LabError(Exception):
    """The lab could not be brought to the wanted state; the message says where."""


class LabInputError(LabError):
    """An option of lab.up is wrong (checked before anything is made)."""


@dataclass(frozen=True)
class Engine:
    """A Docker engine generation the lab offers, and the host it needs.

    The lab never installs Docker itself (docker.install does): it makes hosts whose package
    sources offer that engine, as a production host's sources would.
    """

    name: str  # "28.5"
    release: str  # Debian release of the host image
    sid: bool = False  # the host's apt also has sid, pinned so its engine packages win

    @property
    def image(self) -> str:
        return f"{HOST_IMAGE_REPO}:{self.release}"


ENGINES = {
    "20.10": Engine("20.10", "bookworm"),  # Debian 12's docker.io 20.10.24
    "26.1": Engine("26.1", "trixie"),  # Debian 13's docker.io 26.1.5
    # sid's docker.io 28.5.2 on a trixie host: a sid host cannot boot on cgroup v1 (LAB-FACTS)
    "28.5": Engine("28.5", "trixie", sid=True),
}
NEWEST = "28.5"
RELEASES = tuple(sorted({e.release for e in ENGINES.values()}))


def engines(spec: str | None, n: int) -> list[Engine] | None:
    """Per-host engines from ``--engine``: one generation for all ``n`` hosts, or a comma list
    of exactly ``n`` (a mixed cluster). None (no spec): keep what each host has."""
    if spec is None or not str(spec).strip():
        return None
    names = [x.strip() for x in str(spec).split(",")]
    bad = [x for x in names if x not in ENGINES]
    if bad:
        raise LabInputError(f"--engine {bad[0]!r} is not one of {', '.join(ENGINES)}")
    if len(names) == 1:
        names *= n
    if len(names) != n:
        raise LabInputError(f"--engine lists {len(names)} engines for {n} hosts: give one, or one per host")
    return [ENGINES[x] for x in names]


def default_engine() -> Engine:
    """Engine of a new host when neither --engine nor $SWARMBOOK_LAB_ENGINE names one."""
    return ENGINES[NEWEST]


@dataclass(frozen=True)
class LabHost:
    name: str  # container name, e.g. swarmbook-lab-h1
    hostname: str  # e.g. h1
    addr: str  # e.g. 172.29.100.11
    engine: str = ""  # engine generation (ENGINES) this host was made for; "" when not known


@dataclass
class LabInfo:
    state_dir: Path
    hosts_env: Path
    key: Path
    hosts: list[LabHost]
    registry: str  # host:port, e.g. registry.lab:5000
    ca: Path
    changed: list[str] = field(default_factory=list)  # what up() did; empty: nothing changed
    known_hosts: Path | None = None  # the hosts' keys (hosts.env's SSH_KNOWN_HOSTS)


def instance(explicit: int | str | None = None) -> int:
    """Which lab of this machine: argument > $SWARMBOOK_LAB_INSTANCE > 0."""
    raw = explicit if explicit is not None else (os.environ.get("SWARMBOOK_LAB_INSTANCE") or "0")
    try:
        k = int(str(raw).strip())
    except ValueError:
        raise LabError(f"SWARMBOOK_LAB_INSTANCE {raw!r} is not a number 0..{MAX_INSTANCE}") from None
    if not 0 <= k <= MAX_INSTANCE:
        raise LabError(f"SWARMBOOK_LAB_INSTANCE {k} is not a number 0..{MAX_INSTANCE}")
    return k


def network(k: int | None = None) -> str:
    """Docker network (and bridge interface) name of instance ``k``."""
    k = instance(k)
    return NETWORK if k == 0 else f"{NETWORK}{k}"


def _prefix(k: int | None) -> str:
    return f"172.29.{100 + instance(k)}"


def subnet(k: int | None = None) -> str:
    return SUBNET if instance(k) == 0 else f"{_prefix(k)}.0/24"


def gateway(k: int | None = None) -> str:
    """Outer side of instance ``k``'s bridge: its registries listen here (registry.lab)."""
    return GATEWAY if instance(k) == 0 else f"{_prefix(k)}.1"


def host(i: int, k: int | None = None) -> LabHost:
    """Host number ``i`` (1-based) of instance ``k``."""
    if not 1 <= i <= MAX_HOSTS:
        raise ValueError(f"host number must be 1..{MAX_HOSTS}, got {i}")
    return LabHost(name=f"{network(k)}-h{i}", hostname=f"h{i}", addr=f"{_prefix(k)}.{10 + i}")


def hosts(n: int, k: int | None = None) -> list[LabHost]:
    if not 1 <= n <= MAX_HOSTS:
        raise LabInputError(f"--hosts must be 1..{MAX_HOSTS}, got {n}")
    return [host(i, k) for i in range(1, n + 1)]


def is_host_name(name: str, k: int | None = None) -> bool:
    """True for a host container name of instance ``k`` (swarmbook-lab-h3, swarmbook-lab1-h2)."""
    return bool(re.fullmatch(rf"{re.escape(network(k))}-h\d+", name))


def state_dir(explicit: Path | str | None = None) -> Path:
    """The per-checkout state dir: argument > $SWARMBOOK_LAB_DIR > <repo>/.lab (.lab{k} for instance k);
    swarmbook installed from a wheel has no checkout: ./.lab of the folder it runs in."""
    from .. import assets

    k = instance()
    base = Path.cwd() if assets.installed() else REPO_ROOT
    raw = explicit or os.environ.get("SWARMBOOK_LAB_DIR") or base / (".lab" if k == 0 else f".lab{k}")
    return Path(raw).expanduser().resolve()


def cache_dir() -> Path:
    return Path(os.environ.get("SWARMBOOK_LAB_CACHE") or DEFAULT_CACHE)


def state_id(state: Path) -> str:
    """Short stable id of a state dir, used for labels and data dir names."""
    return hashlib.sha256(str(state).encode()).hexdigest()[:12]


def data_root() -> Path:
    return Path(os.environ.get("SWARMBOOK_LAB_DATA") or DEFAULT_DATA)


def data_dir(state: Path) -> Path:
    """Per-lab data on a real file system: host /var/lib/docker dirs, registry storage."""
    return data_root() / state_id(state)


@dataclass(frozen=True)
class Paths:
    """Files of one lab's state dir."""

    state: Path

    @property
    def key(self) -> Path:
        return self.state / "id_ed25519"

    @property
    def pubkey(self) -> Path:
        return self.state / "id_ed25519.pub"

    @property
    def hosts_env(self) -> Path:
        return self.state / "hosts.env"

    @property
    def ca(self) -> Path:
        return self.state / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.state / "ca.key"

    @property
    def cert(self) -> Path:
        return self.state / "registry.crt"

    @property
    def cert_key(self) -> Path:
        return self.state / "registry.key"

    @property
    def htpasswd(self) -> Path:
        return self.state / "htpasswd"

    @property
    def password(self) -> Path:
        return self.state / "registry.password"

    @property
    def known_hosts(self) -> Path:
        """Every lab host's keys (SSH_KNOWN_HOSTS of the lab's hosts.env)."""
        return self.state / "known_hosts"

    def host_keys(self, hostname: str) -> Path:
        """Folder of one host's SSH host keys, made once, put into each new container."""
        return self.state / "hostkeys" / hostname

    @property
    def docker_config(self) -> Path:
        """DOCKER_CONFIG for the outer client's registry login (keeps ~/.docker untouched)."""
        return self.state / "docker-client"

    def registry_config(self, port: int) -> Path:
        return self.state / f"registry-{port}.yml"

    def registry_pid(self, port: int) -> Path:
        return self.state / f"registry-{port}.pid"

    def registry_log(self, port: int) -> Path:
        return self.state / f"registry-{port}.log"
