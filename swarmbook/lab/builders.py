"""Pure builders: argv lists and file texts. Nothing here runs a command or touches disk."""

from __future__ import annotations

import json
from pathlib import Path

from . import layout
from .layout import LabHost

HOST_PACKAGES = (
    "systemd", "systemd-sysv", "openssh-server", "iproute2", "ca-certificates", "curl", "cron",
    "procps", "iptables", "iputils-ping", "sudo", "gnupg", "kmod",
)
MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"  # the seed and platform images' release; hosts have their engine's (layout.ENGINES)
# sid's Release file is past its Valid-Until date on Debian's registry (LAB-FACTS): apt needs this
SID_SOURCE = f"deb [check-valid-until=no] {MIRROR} sid main\n"
SID_LIST = "/etc/apt/sources.list.d/swarmbook-lab-sid.list"
SID_PIN = "/etc/apt/preferences.d/swarmbook-lab-sid"


# -- docker -------------------------------------------------------------------------------

def labels_argv(state: Path) -> list[str]:
    """Labels that mark a container/network as made by the lab of this state dir."""
    return ["--label", f"{layout.LABEL}=1",
            "--label", f"{layout.STATE_LABEL}={layout.state_id(state)}",
            "--label", f"{layout.DIR_LABEL}={state}"]


def network_create_argv(state: Path) -> list[str]:
    return [
        "docker", "network", "create", "--driver", "bridge",
        "--subnet", layout.subnet(), "--gateway", layout.gateway(),
        "--opt", f"com.docker.network.bridge.name={layout.network()}",
        *labels_argv(state),
        layout.network(),
    ]


def host_create_argv(h: LabHost, host_data: Path, state: Path,
                     image: str = layout.HOST_IMAGE) -> list[str]:
    """`docker create` for one lab host: systemd as PID 1, nested-docker capable.

    ``--privileged`` is refused on this kernel (no CAP_SYS_RESOURCE in the bounding set),
    so every other capability, all devices and the host cgroup tree are granted instead.
    ``systempaths=unconfined`` leaves /proc/sys writable, as on a real host: Docker 26 and
    newer write each container's ``disable_ipv6`` and refuse to start a container with a
    network when they cannot (measured, LAB-FACTS). The sysctls a host writes there are its
    own network namespace's; systemd-sysctl is masked so a boot never sets machine-wide ones.
    """
    return [
        "docker", "create",
        "--name", h.name, "--hostname", h.hostname,
        *labels_argv(state), "--label", f"{layout.ENGINE_LABEL}={h.engine}",
        "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
        "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
        "--security-opt", "systempaths=unconfined",
        "--device-cgroup-rule", "a *:* rwm", "--cgroupns=host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "-v", f"{host_data / 'docker'}:/var/lib/docker",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--network", layout.network(), "--ip", h.addr, "--network-alias", h.hostname,
        "--add-host", f"{layout.REGISTRY_HOST}:{layout.gateway()}",
        "--stop-signal", "SIGRTMIN+3",  # systemd's "halt" signal
        image, "/sbin/init",
    ]


def import_argv(image: str, changes: tuple[str, ...] = (), source: str = "-") -> list[str]:
    """`docker import SOURCE IMAGE`; SOURCE "-" reads a tar stream on stdin."""
    argv = ["docker", "import"]
    for c in changes:
        argv += ["--change", c]
    return argv + [source, image]


# -- hosts.env ----------------------------------------------------------------------------

def roles(hs: list[LabHost]) -> dict[str, list[str]]:
    """Host groups: h1 manager, the rest workers; GITLAB/KONG/BUILD on h1, RUNNERS on h2."""
    first = hs[0].addr
    runners = hs[1].addr if len(hs) > 1 else first
    return {
        "MANAGERS": [first],
        "WORKERS": [h.addr for h in hs[1:]],
        "BUILD": [first],
        "GITLAB": [first],
        "RUNNERS": [runners],
        "KONG": [first],
    }


def hosts_env_text(hs: list[LabHost], key: Path, password: str, ca: Path,
                   services: dict[str, str] | None = None, known_hosts: Path | None = None) -> str:
    """The lab's hosts file; ``services`` (see :func:`services_env`) adds the platform section;
    ``known_hosts`` (lab.up always gives it) is where the hosts' keys are on record."""
    groups = roles(hs)
    lines = ["# swarmbook lab hosts file, written by `inv lab.up`"]
    lines += [f"{k}={','.join(v)}" for k, v in groups.items()]
    lines += [
        "# the test environment's deploy runner sits on the manager (RUNNERS is the builder runner)",
        f"DEPLOY_RUNNERS={groups['MANAGERS'][0]}",
        "DEPLOY_RUNNER_TAGS=test",
        "SSH_USER=root",
        "SSH_PORT=22",
        f"SSH_KEY={key}",
        "DOCKER_INSTALL_METHOD=distro",
        f"DOCKER_MIRRORS=https://{layout.REGISTRY_HOST}:{layout.MIRROR_PORT}",
        f"REGISTRY={layout.REGISTRY_HOST}:{layout.REGISTRY_PORT}",
        f"REGISTRY_USER={layout.REGISTRY_USER}",
        f"REGISTRY_PASSWORD={password}",
        f"REGISTRY_CA={ca}",
        f"DOCKER_TLS_DIR={key.parent / 'tls'}",
        "# no IPVS in this kernel: no routing mesh; every node runs one task on its own address",
        "STACK_PUBLISH_MODE=host",
    ]
    if known_hosts is not None:
        lines += ["# every lab host's keys, recorded by lab.up (kept with the state dir across down/up)",
                  f"SSH_KNOWN_HOSTS={known_hosts}"]
    if services:
        lines.append("# platform services (issue 5): lab images are stand-ins or Debian builds, see docs/platform.md")
        lines += [f"{k}={v}" for k, v in services.items()]
    return "\n".join(lines) + "\n"


def recorded_ports(text: str) -> dict[str, int]:
    """host -> SSH port recorded in a lab hosts file (sshd.move-port writes host:port)."""
    from swarmbook.config import GROUPS, parse_host

    ports: dict[str, int] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if eq and key.strip() in GROUPS:
            for entry in filter(None, (e.strip() for e in value.split(","))):
                spec = parse_host(entry, user="root", port=0)
                if spec.port:
                    ports[spec.host] = spec.port
    return ports


def carry_ports(old_text: str, new_text: str) -> str:
    """Keep SSH ports recorded in an existing lab hosts file."""
    from swarmbook.envfile import with_port

    for host, port in recorded_ports(old_text).items():
        new_text = with_port(new_text, host, port)
    return new_text


# -- registry -----------------------------------------------------------------------------

def registry_config_text(*, port: int, storage: Path, cert: Path, key: Path, secret: str,
                         htpasswd: Path | None = None, readonly: bool = False) -> str:
    """distribution 2.8 config. JSON strings are valid YAML scalars, so values are quoted so."""
    q = json.dumps
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  formatter: text",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {q(str(storage))}",
        "  delete:",
        "    enabled: true",
    ]
    if readonly:
        lines += ["  maintenance:", "    readonly:", "      enabled: true",
                  "    uploadpurging:", "      enabled: false"]
    lines += [
        "http:",
        f"  addr: {q(f'{layout.gateway()}:{port}')}",
        f"  secret: {q(secret)}",
        "  tls:",
        f"    certificate: {q(str(cert))}",
        f"    key: {q(str(key))}",
        "  headers:",
        "    X-Content-Type-Options: [nosniff]",
    ]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: swarmbook-lab",
                  f"    path: {q(str(htpasswd))}"]
    return "\n".join(lines) + "\n"


def registry_argv(config: Path) -> list[str]:
    return ["docker-registry", "serve", str(config)]


# -- PKI (openssl) ------------------------------------------------------------------------

def ca_argv(ca: Path, ca_key: Path, days: int = 3650) -> list[str]:
    return [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", str(days),
        "-subj", "/CN=swarmbook lab CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]


def csr_argv(key: Path, csr: Path) -> list[str]:
    return [
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={layout.REGISTRY_HOST}",
    ]


def server_ext_text() -> str:
    return (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName=DNS:{layout.REGISTRY_HOST},IP:{layout.gateway()}\n"
    )


def sign_argv(csr: Path, ca: Path, ca_key: Path, ext: Path, out: Path,
              days: int = 825) -> list[str]:
    return [
        "openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(out), "-days", str(days), "-sha256", "-extfile", str(ext),
    ]


# -- images -------------------------------------------------------------------------------

def debootstrap_argv(target: Path, include: tuple[str, ...] = HOST_PACKAGES,
                     release: str = SUITE) -> list[str]:
    argv = ["debootstrap", "--variant=minbase"]
    if include:
        argv.append("--include=" + ",".join(include))
    return argv + [release, str(target), MIRROR]


def sources_list_text(release: str = SUITE) -> str:
    return (
        f"deb {MIRROR} {release} main\n"
        f"deb {MIRROR} {release}-updates main\n"
        f"deb http://deb.debian.org/debian-security {release}-security main\n"
    )


def engine_packages(release: str) -> tuple[str, ...]:
    """What `apt-get install` of Docker takes on ``release``: trixie moved the CLI out of
    docker.io into docker-cli (only a Recommends of docker.io there)."""
    return ("docker.io",) if release == "bookworm" else ("docker.io", "docker-cli")


def sid_pin_text(packages: list[str]) -> str:
    """apt preferences of a 28.5 host: sid's engine ``packages`` win over the release's (like
    Docker's own repository would), everything else of sid only on request."""
    return (f"Package: {' '.join(sorted(packages))}\nPin: release n=sid\nPin-Priority: 600\n\n"
            "Package: *\nPin: release n=sid\nPin-Priority: 100\n")


def sid_engine_set(simulated: str) -> list[str]:
    """Packages new to the host that `apt-get install -s --no-install-recommends docker.io/sid
    docker-cli/sid` takes from sid (``Inst containerd (2.1.9+ds1-5 Debian:unstable [amd64])``).
    An upgrade of an installed package (``Inst libc6 [2.41-12] (2.43-1 Debian:unstable ...)``)
    is left out: pinned, sid's libc6 and systemd would follow at the next upgrade, and systemd
    262 does not boot on this machine's cgroup v1 (LAB-FACTS)."""
    out = []
    for line in simulated.splitlines():
        parts = line.split()
        if (len(parts) >= 3 and parts[0] == "Inst" and not parts[2].startswith("[")
                and "unstable" in line.split("(", 1)[-1]):
            out.append(parts[1])
    return sorted(set(out))


SSHD_CONF = """\
# swarmbook lab: key-only root login
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
"""

BOOT_UNIT = """\
[Unit]
Description=swarmbook lab: per-host SSH host keys and the lab CA in the trust store
# default dependencies: after sysinit (tmpfiles has cleaned /tmp, update-ca-certificates uses it)
Before=ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -A'
ExecStart=/usr/sbin/update-ca-certificates

[Install]
WantedBy=multi-user.target ssh.service
"""

# Units that cannot work (or are pointless) inside a container.
MASKED_UNITS = (
    "systemd-remount-fs.service", "systemd-firstboot.service", "getty@tty1.service",
    "console-getty.service", "sys-kernel-config.mount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "systemd-modules-load.service", "e2scrub_reap.service",
    "apt-daily.timer", "apt-daily-upgrade.timer", "systemd-sysctl.service",
)


def host_image_context(base: str, recipe: str) -> dict[str, str]:
    """Files of the `docker build` context that turns the debootstrap base into the host image."""
    dockerfile = f"""\
FROM {base}
COPY sshd.conf /etc/ssh/sshd_config.d/swarmbook-lab.conf
COPY boot.service /etc/systemd/system/swarmbook-lab-boot.service
RUN set -eux; \\
    rm -f /etc/ssh/ssh_host_*; \\
    : > /etc/machine-id; rm -f /var/lib/dbus/machine-id; \\
    install -d -m 0700 /root/.ssh; \\
    systemctl enable swarmbook-lab-boot.service; \\
    systemctl mask {' '.join(MASKED_UNITS)}; \\
    systemctl set-default multi-user.target
ENV container=docker
STOPSIGNAL SIGRTMIN+3
LABEL {layout.LABEL}.recipe={recipe}
CMD ["/sbin/init"]
"""
    return {"Dockerfile": dockerfile, "sshd.conf": SSHD_CONF, "boot.service": BOOT_UNIT}


def busybox_tree(applets: list[str]) -> dict[str, str | None]:
    """Paths of a busybox image relative to its root: None means 'symlink to busybox'."""
    tree: dict[str, str | None] = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    }
    for a in sorted(set(applets)):
        if a and a != "busybox" and "/" not in a:
            tree[f"bin/{a}"] = None
    return tree
