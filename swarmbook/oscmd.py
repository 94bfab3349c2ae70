"""OS differences in one place: package commands per family (debian | rhel)."""

from __future__ import annotations

from .errors import StepFailed
from .shell import join, quote

DEBIAN_ENV = "DEBIAN_FRONTEND=noninteractive"


def restart_cmd(unit: str, *, enable: bool = False) -> str:
    """Reload unit files and restart ``unit`` once. ``reset-failed`` first clears systemd's
    start rate limit (docker.service allows 3 starts a minute), so a restart soon after another
    one (a second task, a heal) still runs."""
    u = quote(unit)
    return (f"systemctl daemon-reload && {{ systemctl reset-failed {u} 2>/dev/null; "
            + (f"systemctl enable {u} && " if enable else "") + f"systemctl restart {u}; }}")


def start_cmd(unit: str) -> str:
    """Reload unit files, enable ``unit`` and start it (a no-op start when it runs already)."""
    return f"systemctl daemon-reload && systemctl enable --now {quote(unit)}"


def add_to_group_cmd(user: str, group: str) -> str:
    return join(["usermod", "-aG", group, user])


def install(family: str, packages: list[str]) -> str:
    """Install packages; on Debian refresh the package lists only when the first try fails."""
    if family == "debian":
        get = join(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages])
        return f"export {DEBIAN_ENV}; {get} || {{ apt-get update -q && {get}; }}"
    if family == "rhel":
        return join(["yum", "install", "-y", *packages])
    raise StepFailed(f"unsupported OS family {family!r}")


def refresh_cmd(family: str) -> str:
    """Refresh what the package sources offer (apt's lists; yum reads its metadata itself)."""
    if family == "debian":
        return f"export {DEBIAN_ENV}; apt-get update -q"
    if family == "rhel":
        return "yum makecache -q"
    raise StepFailed(f"unsupported OS family {family!r}")


def remove(family: str, packages: list[str]) -> str:
    if family == "debian":
        return f"export {DEBIAN_ENV}; " + join(["apt-get", "remove", "-y", "-q", *packages])
    if family == "rhel":
        return join(["yum", "remove", "-y", *packages])
    raise StepFailed(f"unsupported OS family {family!r}")
