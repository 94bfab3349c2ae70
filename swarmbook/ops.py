"""Idempotent primitives on a :class:`~swarmbook.engine.Host`: probe, then change only what differs.

Each returns True when it changed something (or would, in check mode). Writes are atomic
(temp file in the same directory, then rename), so a killed run never leaves half a file.
"""

from __future__ import annotations

from typing import Any

from . import facts as F
from . import oscmd
from .engine import Host
from .shell import quote


def write_file_cmd(path: str, *, mode: str = "0644", owner: str = "root", group: str = "root",
                   backup: bool = False) -> str:
    """Command that atomically replaces ``path`` with stdin (optionally keeping ``path``.bak)."""
    q = quote(path)
    keep = f"if [ -f {q} ]; then cp -p {q} {q}.bak; fi; " if backup else ""
    return (f"mkdir -p \"$(dirname {q})\" && {keep}tmp=$(mktemp {q}.XXXXXX) && cat > \"$tmp\" && "
            f"chown {quote(owner)}:{quote(group)} \"$tmp\" && chmod {quote(mode)} \"$tmp\" && mv -f \"$tmp\" {q}")


def file_differs(state: dict[str, Any] | None, content: str, *, mode: str, owner: str, group: str) -> str:
    """Why the file needs writing ('' when it is already right)."""
    if state is None:
        return "absent"
    if state["content"] != content:
        return "content differs"
    if state["mode"].lstrip("0") != mode.lstrip("0") or state["owner"] != owner or state["group"] != group:
        return f"owner/mode {state['owner']}:{state['group']} {state['mode']}"
    return ""


def put_file(h: Host, path: str, content: str, *, mode: str = "0644", owner: str = "root",
             group: str = "root", state: dict[str, Any] | None | str = "probe", step: str | None = None,
             secret: bool = False, backup: bool = False) -> bool:
    """Ensure a file has exactly ``content``, owner and mode. Pass ``state`` if already probed."""
    if state == "probe":
        state = h.probe(F.file_state(path, "f"))["f"]
    why = file_differs(state, content, mode=mode, owner=owner, group=group)  # type: ignore[arg-type]
    step = step or f"file {path}"
    if not why:
        h.ok(step)
        return False
    h.change(step, write_file_cmd(path, mode=mode, owner=owner, group=group, backup=backup),
             stdin=content, reason=why if not secret else "updated")
    return True


def ensure_packages(h: Host, family: str, packages: list[str], *, installed: set[str]) -> bool:
    """Install whichever of ``packages`` is not in ``installed`` (one command for all of them).

    ``installed`` comes from the caller's facts (e.g. ``command -v dockerd`` in the probe the
    task makes anyway), so this costs no round trip of its own.
    """
    missing = [p for p in packages if p not in installed]
    if not missing:
        h.ok(f"packages {' '.join(packages)}")
        return False
    h.change(f"install {' '.join(missing)}", oscmd.install(family, missing), timeout=1800)
    return True


def ensure_service(h: Host, unit: str, *, active: bool, enabled: bool, restart: bool = False,
                   why: str = "configuration changed") -> bool:
    """Enable and start a unit; restart it once when ``restart`` (something it reads changed).

    A unit that is not running is started, not restarted: the start reads the new files too.
    """
    if restart and active:
        h.change(f"restart {unit}", oscmd.restart_cmd(unit, enable=not enabled), reason=why)
        return True
    if active and enabled:
        h.ok(f"service {unit} running")
        return False
    h.change(f"start {unit}", oscmd.start_cmd(unit),
             reason=("not running" if not active else "not enabled"))
    return True


def unit_facts(path: str, unit: str) -> list[F.Fact]:
    """What :func:`ensure_unit` reads; a task may add them to its own probe and pass the result."""
    return [F.file_state(path, f"file:{path}"), F.unit_state(unit), F.unit_stale(unit, [path])]


def ensure_unit(h: Host, path: str, content: str, unit: str, *, facts: dict[str, Any] | None = None,
                step: str | None = None) -> bool:
    """Ensure a systemd unit file or drop-in (``path``) holds ``content`` and ``unit`` runs with it.

    Writes the file only when it differs, then reloads systemd and restarts ``unit`` once; when
    nothing changed there is no restart, unless the unit still runs with older files (a run
    killed between the write and the restart). A stopped unit is enabled and started.
    ``facts``: the values of :func:`unit_facts` if the caller probed them already.
    """
    f = facts if facts is not None else h.probe(*unit_facts(path, unit))
    written = put_file(h, path, content, state=f[f"file:{path}"], step=step or f"unit file {path}")
    service = f[f"unit:{unit}"]
    stale = bool(f[f"stale:{unit}"]) and not written
    return ensure_service(h, unit, active=service["active"], enabled=service["enabled"], restart=written or stale,
                          why=f"{path} changed" if written else "unit files written earlier, not applied yet") or written


def ensure_in_group(h: Host, user: str, group: str, *, groups: set[str] | None) -> bool:
    """Add ``user`` to ``group``; reconnect afterwards so the new membership applies."""
    if groups is not None and group in groups:
        h.ok(f"{user} in group {group}")
        return False
    h.change(f"add {user} to group {group}", oscmd.add_to_group_cmd(user, group))
    if not h.check:
        h.reconnect()
    return True
