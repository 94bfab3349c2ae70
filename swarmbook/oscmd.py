"""OS differences in one place: package commands per family (debian | rhel)."""

from __future__ import annotations

from .errors import StepFailed
from .shell import join

DEBIAN_ENV = "DEBIAN_FRONTEND=noninteractive"


def install(family: str, packages: list[str]) -> str:
    """Install packages; on Debian refresh the package lists only when the first try fails."""
    if family == "debian":
        get = join(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages])
        return f"export {DEBIAN_ENV}; {get} || {{ apt-get update -q && {get}; }}"
    if family == "rhel":
        return join(["yum", "install", "-y", *packages])
    raise StepFailed(f"unsupported OS family {family!r}")


def remove(family: str, packages: list[str]) -> str:
    if family == "debian":
        return f"export {DEBIAN_ENV}; " + join(["apt-get", "remove", "-y", "-q", *packages])
    if family == "rhel":
        return join(["yum", "remove", "-y", *packages])
    raise StepFailed(f"unsupported OS family {family!r}")
