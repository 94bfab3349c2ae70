"""Pure command builders for the Docker engine on a host (install, daemon.json, restart)."""

from __future__ import annotations

import re

from .shell import quote

DAEMON_JSON = "/etc/docker/daemon.json"
GET_DOCKER = "curl -fsSL https://get.docker.com -o /tmp/get-docker.sh && sh /tmp/get-docker.sh"
# Distribution packages per OS family (RHEL/CentOS 7 ships "docker" in extras).
DISTRO_PACKAGES = {"debian": ["docker.io"], "rhel": ["docker"]}
METHODS = ("script", "distro")

_MIRROR = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s]*)?$")


def bad_mirror(url: str) -> str:
    """'' when ``url`` is a usable mirror address, else why not."""
    if not _MIRROR.match(url):
        return f"registry mirror {url!r} is not an http(s)://host[:port] URL"
    return ""


def replace_daemon_json(path: str = DAEMON_JSON, unit: str = "docker") -> str:
    """Script: stdin becomes daemon.json, validated by dockerd when it can, then one restart.

    A file dockerd rejects is never installed; if the engine does not come back with the new
    file, the previous one is put back and the engine restarted, so the host keeps Docker.
    """
    f, u = quote(path), quote(unit)
    return "\n".join([
        "set -e",
        f"mkdir -p \"$(dirname {f})\"",
        f"if [ -f {f} ]; then cp -p {f} {f}.bak; else rm -f {f}.bak; fi",
        f"tmp=$(mktemp {f}.XXXXXX); cat > \"$tmp\"; chmod 0644 \"$tmp\"",
        "if dockerd --help 2>/dev/null | grep -q -- '--validate'; then",
        f"  if ! dockerd --validate --config-file \"$tmp\" >/dev/null 2>&1; then rm -f \"$tmp\";"
        " echo 'new daemon.json rejected by dockerd --validate; nothing changed' >&2; exit 3; fi",
        "fi",
        f"mv -f \"$tmp\" {f}",
        f"if ! systemctl restart {u}; then",
        f"  if [ -f {f}.bak ]; then mv -f {f}.bak {f}; else rm -f {f}; fi",
        f"  systemctl reset-failed {u} || true; systemctl restart {u} || true",
        "  echo 'docker did not start with the new daemon.json; the previous file is back' >&2; exit 4",
        "fi",
    ])
