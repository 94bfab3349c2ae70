"""swarmbook lab: N Debian 12 hosts (systemd + sshd, nested-docker capable) as containers of
the outer docker engine, plus a TLS registry and a read-only mirror. See docs/lab.md.

Public API: up(hosts=3, state_dir=None) -> LabInfo, status(state_dir=None) -> dict,
down(state_dir=None) -> None, memory(state_dir=None) -> dict.
"""

from .control import down, memory, status, up
from .layout import LabError, LabHost, LabInfo, LabInputError

__all__ = ["up", "status", "down", "memory", "LabInfo", "LabHost", "LabError", "LabInputError"]
