"""Pure command builders for the Docker engine on a host (install, daemon.json, restart)."""

from __future__ import annotations

import base64
import re
import urllib.parse

from . import oscmd
from .shell import join, quote

DAEMON_JSON = "/etc/docker/daemon.json"
TCP_DROPIN = "/etc/systemd/system/docker.service.d/swarmbook-tcp.conf"
TLS_DIR = "/etc/docker/tls"
GET_DOCKER = "curl -fsSL https://get.docker.com -o /tmp/get-docker.sh && sh /tmp/get-docker.sh"
# Distribution packages per OS family (RHEL/CentOS 7 ships "docker" in extras). Debian 13 and
# newer split the CLI into docker-cli, only a Recommends of docker.io: both are asked for where
# the sources offer docker-cli (engine_packages).
DISTRO_PACKAGES = {"debian": ["docker.io"], "rhel": ["docker"]}
DEBIAN_CLI = "docker-cli"
METHODS = ("script", "distro")
SERVER_VERSION_CMD = "docker version --format '{{.Server.Version}}'"
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+~-]{0,63}$")


def bad_version(version: str) -> str:
    """'' when ``version`` can be DOCKER_VERSION (e.g. 28.5, 26.1.5, 28.5.2+dfsg4), else why not."""
    if _VERSION.match(version):
        return ""
    return (f"DOCKER_VERSION {version[:40]!r} is not a version (digits first, then letters, "
            "digits and . + ~ -, e.g. 28.5 or 26.1.5)")


def version_matches(offered: str, wanted: str) -> bool:
    """True when ``offered`` (a package or engine version, e.g. 5:28.5.2-1~debian.12, 28.5.2+dfsg4)
    is ``wanted`` or begins with it at a component boundary: 26.1 matches 26.1.5, not 26.10."""
    bare = offered.split(":", 1)[1] if re.match(r"^\d+:", offered) else offered
    return bare == wanted or (bare.startswith(wanted) and bare[len(wanted)] in ".+~-")


def get_docker_cmd(version: str = "") -> str:
    """get.docker.com, the runbook's way; ``--version`` pins what it installs from Docker's repository."""
    return GET_DOCKER + (f" --version {quote(version)}" if version else "")


def engine_packages(offered: dict[str, list[tuple[str, str]]], version: str = "", *,
                    cli_only: bool = False) -> list[str]:
    """apt arguments for the engine: docker.io (unless ``cli_only``: dockerd is there) and, where
    the sources offer it, docker-cli; with ``version``, each pinned to the newest offered version
    that matches it (``docker.io=28.5.2+dfsg4``). ValueError names what the sources offer instead."""
    names = ([] if cli_only else ["docker.io"]) + ([DEBIAN_CLI] if offered.get(DEBIAN_CLI) else [])
    if not version:
        return names
    out = []
    for name in names:
        match = next((v for v, _ in offered.get(name, []) if version_matches(v, version)), None)
        if match is None:
            have = ", ".join(f"{v} ({suite})" for v, suite in offered.get(name, [])) or "nothing"
            raise ValueError(f"DOCKER_VERSION {version}: the package sources offer {name} {have}")
        out.append(f"{name}={match}")
    return out


def upgrade_cmd(packages: list[str], *, downgrade: bool = False) -> str:
    """Replace the engine's packages with the pinned ``packages`` (``docker.io=28.5.2+dfsg4-1``,
    :func:`engine_packages`); configuration files the admin changed are kept (confold), and apt
    pulls the matching containerd/runc where the new engine needs them. ``downgrade`` allows an
    older version (docker.upgrade --downgrade)."""
    get = join(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                *(["--allow-downgrades"] if downgrade else []),
                "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", *packages])
    return f"export {oscmd.DEBIAN_ENV}; {get}"


def _order(c: str) -> int:
    """dpkg's order of one non-digit character: ~ first, then the end of a part, letters, the rest."""
    return -1 if c == "~" else ord(c) if c.isalpha() else ord(c) + 256


def _compare_part(a: str, b: str) -> int:
    while a or b:
        na, nb = re.match(r"\D*", a).group(), re.match(r"\D*", b).group()
        for i in range(max(len(na), len(nb))):
            ca = _order(na[i]) if i < len(na) else 0
            cb = _order(nb[i]) if i < len(nb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na):], b[len(nb):]
        da, db = re.match(r"\d*", a).group(), re.match(r"\d*", b).group()
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da):], b[len(db):]
    return 0


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as Debian package version ``a`` is older than, the same as or newer than ``b``
    (dpkg --compare-versions: epoch, then upstream version, then Debian revision)."""
    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.partition(":") if re.match(r"^\d+:", v) else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "0")
        return int(epoch), upstream, revision
    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


_MIRROR_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:(\d*))?$")


def bad_mirror(url: str) -> str:
    """'' when dockerd accepts ``url`` as a registry mirror, else why not.

    dockerd's rules (moby registry.ValidateMirror): scheme http or https; no path other than
    '' or '/'; no query, no fragment; no user name or password. It refuses daemon.json at
    start-up when one entry breaks them, so they are checked here, before any host is
    touched; and a host, with a port from 1 to 65535 when one is given.
    """
    if re.search(r"[\x00-\x20\x7f]", url):
        return f"registry mirror {url!r} contains a space or control character"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return f"registry mirror {url!r} is not an http(s)://host[:port] URL"
    if "@" in parts.netloc:  # never echo the password back
        shown = url.replace(parts.netloc, "xxxxx@" + parts.netloc.rsplit("@", 1)[1], 1)
        return f"registry mirror {shown!r} has a user name or password: dockerd refuses them in a mirror URL"
    m = _MIRROR_HOST.match(parts.netloc)
    if parts.scheme not in ("http", "https") or not m:
        return f"registry mirror {url!r} is not an http(s)://host[:port] URL"
    port = m.group(4)
    if port is not None and (not port or len(port) > 5 or not 1 <= int(port) <= 65535):
        return f"registry mirror {url!r}: port {port!r} is not a number from 1 to 65535"
    if parts.path not in ("", "/"):
        return f"registry mirror {url!r} has a path ({parts.path}): dockerd takes only http(s)://host[:port][/]"
    if "?" in url or "#" in url:  # (dockerd lets a bare '?' or '#' through; it is no use either)
        return f"registry mirror {url!r} has a query or fragment: dockerd refuses them in a mirror URL"
    return ""


def replace_engine_files(files: dict[str, str], unit: str = "docker") -> str:
    """Script: install engine config files (daemon.json, unit drop-ins) and restart once.

    daemon.json is checked by ``dockerd --validate`` when the engine has it; a file it
    rejects is never installed. If the engine does not come back, every file is put back as
    it was (or removed if it was new) and the engine restarted, so the host keeps Docker.
    Contents travel inline (base64): these files hold no secrets.
    """
    u = quote(unit)
    lines = ["set -e"]
    for path, content in files.items():
        f = quote(path)
        b64 = base64.b64encode(content.encode()).decode()
        lines += [f"mkdir -p \"$(dirname {f})\"",
                  f"if [ -f {f} ]; then cp -p {f} {f}.swarmbook.bak; else rm -f {f}.swarmbook.bak; fi",
                  f"printf '%s' {b64} | base64 -d > {f}.swarmbook.tmp; chmod 0644 {f}.swarmbook.tmp"]
    if DAEMON_JSON in files:
        f = quote(DAEMON_JSON)
        lines += ["if dockerd --help 2>/dev/null | grep -q -- '--validate' && "
                  f"! dockerd --validate --config-file {f}.swarmbook.tmp >/dev/null 2>&1; then",
                  "  rm -f " + " ".join(f"{quote(p)}.swarmbook.tmp" for p in files),
                  "  echo 'new daemon.json rejected by dockerd --validate; nothing changed' >&2; exit 3",
                  "fi"]
    lines += [f"mv -f {quote(p)}.swarmbook.tmp {quote(p)}" for p in files]
    restore = "; ".join(f"if [ -f {quote(p)}.swarmbook.bak ]; then mv -f {quote(p)}.swarmbook.bak {quote(p)}; "
                        f"else rm -f {quote(p)}; fi" for p in files)
    # the start rate limit is cleared first, as oscmd.restart_cmd does: Docker 26+ starts in ~1 s,
    # so a restart soon after others (a test's, a heal's) hits StartLimitBurst=3 (measured on 28.5)
    lines += [f"systemctl daemon-reload; systemctl reset-failed {u} 2>/dev/null; if ! systemctl restart {u}; then",
              f"  {restore}",
              f"  systemctl daemon-reload; systemctl reset-failed {u} || true; systemctl restart {u} || true",
              "  echo 'docker did not start with the new configuration; the previous files are back' >&2; exit 4",
              "fi",
              "rm -f " + " ".join(f"{quote(p)}.swarmbook.bak" for p in files)]
    return "\n".join(lines)


def exec_start(unit_text: str) -> str:
    """The engine's own ExecStart command line from ``systemctl cat docker.service`` output
    (first unit file only, continuation lines joined), so a drop-in can extend it."""
    files = re.split(r"(?m)^# /", unit_text)
    main = files[1] if len(files) > 1 else unit_text
    joined = re.sub(r"\s*\\\n\s*", " ", main)
    for line in joined.splitlines():
        if line.startswith("ExecStart=") and line.strip() != "ExecStart=":
            return line.split("=", 1)[1].strip()
    return ""


def restart_engine_cmd(unit: str = "docker") -> str:
    """Reload units and restart the engine (its start rate limit cleared first: a heal right
    after another restart must not fail on it)."""
    return oscmd.restart_cmd(unit)


def tcp_dropin(exec_start_line: str, listen: str, *, plain: bool = False) -> str:
    """systemd drop-in that keeps the engine's own flags (``-H fd://``) and adds a TCP listener.

    ``plain`` (docker.tcp --insecure) says ``--tls=false`` out loud: Docker 26 and newer slow
    their start down on purpose for an unauthenticated TCP listener unless TLS is disabled
    explicitly (measured on 28.5.2: ~1 s and a deprecation notice; 20.10 takes the flag too)."""
    return ("# written by swarmbook docker.tcp\n[Service]\nExecStart=\n"
            f"ExecStart={exec_start_line} -H {listen}{' --tls=false' if plain else ''}\n")


# --- what docker.mirrors runs to prove its change took (SERVER_VERSION_CMD, above, for install)

MIRRORS_CMD = "docker info --format '{{json .RegistryConfig.Mirrors}}'"  # the mirrors it runs with (docker.mirrors)
