"""Run a built command for real under sh, with the programs it calls (docker, curl, usermod, ...)
replaced by a recorder that writes down the argv it got: an injection test then sees exactly
which arguments a hostile value became, and whether anything else ran."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

EVIL = "x'; touch {dir}/PWNED; echo \"$(touch {dir}/PWNED2)\" `touch {dir}/PWNED3` && y"
PROGRAMS = ("docker", "curl", "usermod", "systemctl", "mkdir", "rm", "test", "gitlab-runner", "git", "sh")

# Each call: its arguments separated by \x1e, the call ended by \x1d. `docker network inspect`
# fails (no such network), so the wait loop of a network removal ends at once.
RECORDER = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; for a in "$@"; do printf '\\036%s' "$a"; done; printf '\\035'; } >> "$RECORDER_LOG"
case "$(basename "$0") $1 $2" in "docker network inspect") exit 1;; esac
exit 0
"""


class Recorder:
    def __init__(self, tmp: Path):
        self.dir = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.log = tmp / "calls"
        for name in PROGRAMS:
            p = self.bin / name
            p.write_text(RECORDER)
            p.chmod(0o755)

    @property
    def evil(self) -> str:
        return EVIL.format(dir=self.dir)

    def run(self, command: str, stdin: str = "") -> list[list[str]]:
        """The calls ``command`` made, each as [program, *argv]."""
        self.log.write_text("")
        env = {**os.environ, "PATH": f"{self.bin}:/usr/bin:/bin", "RECORDER_LOG": str(self.log)}
        # the real sh runs the command; only programs it looks up on PATH are recorded
        subprocess.run(["/bin/sh", "-c", command], input=stdin, text=True, env=env, timeout=30,
                       capture_output=True)
        return [call.split("\x1e") for call in self.log.read_text().split("\x1d") if call]

    def pwned(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob("PWNED*"))
