"""Converge one long-running container (see :mod:`swarmbook.containercmd`) on a host.

Used by gitlab.up, mysql.up and kong.bootstrap: write the secret env file (0600) when it
differs, then create, recreate or start the container only when its spec label, its env file
or its state says so; otherwise report ok.
"""

from __future__ import annotations

from typing import Any

from . import containercmd as C
from . import ops
from .engine import Host


def ensure_env(h: Host, path: str, secrets: dict[str, str], state: dict[str, Any] | None | str = "probe") -> bool:
    """The 0600 env file holding a container's secret values; True when (re)written."""
    return ops.put_file(h, path, C.env_file_text(secrets), mode="0600", state=state,
                        step=f"env file {path}", secret=True)


def ensure(h: Host, c: C.Container, state: dict[str, Any] | None, *, secrets: dict[str, str] | None = None,
           env_state: dict[str, Any] | None | str = "probe", env_changed: bool = False) -> bool:
    """Bring container ``c`` to its spec; True when something changed (or would, in check mode).

    ``env_state="written"``: the env file was already ensured (``env_changed`` says whether it changed).
    """
    env_text = C.env_file_text(secrets) if secrets else ""
    if c.env_file and env_state != "written":
        env_changed = ensure_env(h, c.env_file, secrets or {}, env_state)
    spec = c.spec_hash(env_text)
    why, cmds = C.plan(c, state, spec, env_changed=env_changed and state is not None)
    if not cmds:
        h.ok(f"container {c.name}", f"{c.image} running")
        return env_changed
    h.change(f"container {c.name}", " && ".join(cmds), reason=f"{why}; {c.image}", timeout=1800)
    return True
