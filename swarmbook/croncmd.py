"""Pure builders for cron.install: the runbook's script (pull the app image, run a command in
it with the app's .env mounted), its /etc/cron.d entry, and schedule validation."""

from __future__ import annotations

import re
import shlex

from .facts import Fact
from .shell import join, quote

CRON_D = "/etc/cron.d"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # run-parts: cron.d file names may not hold dots
_MACROS = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES = (None, None, None, "jan feb mar apr may jun jul aug sep oct nov dec".split(),
          "sun mon tue wed thu fri sat".split())


def bad_name(name: str) -> str:
    if not name or not _NAME.match(name):
        return f"cron job name {name!r}: lower-case letters, digits, - and _ (no dots; cron skips such files)"
    return ""


def _bad_field(text: str, i: int) -> bool:
    lo, hi = _RANGES[i]
    names = _NAMES[i] or []
    for part in text.split(","):
        rng, _, step = part.partition("/")
        if step and not (step.isdigit() and int(step) > 0):
            return True
        if rng == "*":
            continue
        ends = rng.split("-")
        if len(ends) > 2:
            return True
        for e in ends:
            if e.lower() in names:  # Debian cron: a single name only, never in ranges or lists
                if len(ends) == 1 and not step and "," not in text:
                    continue
                return True
            if not e.isdigit() or not lo <= int(e) <= hi:
                return True
        if len(ends) == 2 and ends[0].isdigit() and ends[1].isdigit() and int(ends[0]) > int(ends[1]):
            return True
    return False


def bad_schedule(schedule: str) -> str:
    """'' when ``schedule`` is five cron fields (numbers, *, ranges, lists, steps, names) or a @macro."""
    s = " ".join((schedule or "").split())
    if s in _MACROS:
        return ""
    fields = s.split(" ")
    if len(fields) != 5:
        return f"schedule {schedule!r}: five fields (minute hour day month weekday) or @hourly/@daily/..."
    labels = ("minute", "hour", "day of month", "month", "day of week")
    for i, f in enumerate(fields):
        if _bad_field(f, i):
            lo, hi = _RANGES[i]
            return f"schedule {schedule!r}: bad {labels[i]} field {f!r} (allowed {lo}-{hi}, *, lists, ranges, /steps)"
    return ""


def script(name: str, image: str, command: str, *, env_target: str, entrypoint: str = "") -> str:
    """The runbook's script: docker pull, then docker run --rm with the .env beside the script mounted."""
    argv = shlex.split(command)
    # "$basepath" must expand on the host, so that one word is written by hand; the rest is quoted
    run_line = join(["docker", "run", "--rm", "-i", "-v"]) + f' "$basepath/.env:"{quote(env_target + ":ro")}'
    if entrypoint:
        run_line += " " + join(["--entrypoint", entrypoint])
    run_line += " " + join([image, *argv])
    return (f"#!/usr/bin/env bash\n# written by swarmbook cron.install {name}: runs in the app image, logs beside it\n"
            "set -euo pipefail\n"
            'basepath=$(cd "$(dirname "$0")"; pwd)\n'
            f'echo "== $(date -u +%FT%TZ) {name} start"\n'
            f"{join(['docker', 'pull', '-q', image])} >/dev/null\n"
            f"{run_line} </dev/null\n"
            f'echo "== $(date -u +%FT%TZ) {name} done"\n')


def cron_entry(name: str, schedule: str, script_path: str, log_path: str) -> str:
    """/etc/cron.d line (user root); output appended to the log; one run at a time (flock)."""
    lock = f"/run/lock/swarmbook-cron-{name}.lock"
    return (f"# written by swarmbook cron.install {name}\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            f"{' '.join(schedule.split())} root flock -n {quote(lock)} {quote(script_path)} >> {quote(log_path)} 2>&1\n")


# Whether cron runs (Debian names the unit cron, RHEL crond).
SERVICE_FACT = Fact("cron", "systemctl is-active cron 2>/dev/null || systemctl is-active crond",
                    lambda t, rc: "active" in t.split())


def remove_cmd(path: str) -> str:
    return join(["rm", "-f", path])


def paths(cron_dir: str, name: str) -> dict[str, str]:
    base = f"{cron_dir.rstrip('/')}/{name}"
    return {"dir": base, "script": f"{base}/run.sh", "env": f"{base}/.env", "log": f"{base}/cron.log",
            "entry": f"{CRON_D}/swarmbook-{name}"}


# --- backup.all as a cron job on this machine (backup.cron) -------------------------------------

BACKUP_JOB = "swarmbook-backup-all"


def backup_paths(to: str) -> dict[str, str]:
    """Its script and log beside the backups (DIR/.cron/: backup.all's --keep never touches it)."""
    base = f"{to.rstrip('/')}/.cron"
    return {"dir": base, "script": f"{base}/backup-all.sh", "log": f"{base}/backup-all.log",
            "entry": f"{CRON_D}/{BACKUP_JOB}"}


def backup_script(repo: str, hosts_env: str, argv: list[str]) -> str:
    """Run ``argv`` (python -m invoke backup.all ...) from this checkout with this hosts.env; no secret
    in it: they stay in hosts.env (0600), which cron's empty environment leaves as the only source."""
    return (f"#!/bin/sh\n# written by swarmbook backup.cron: backup.all on this machine, logs beside it\nset -eu\n"
            f"cd {quote(repo)}\n"
            f"export SWARMBOOK_ENV={quote(hosts_env)}\n"
            f'echo "== $(date -u +%FT%TZ) backup.all start"\n'
            f"{join(argv)}\n"
            f'echo "== $(date -u +%FT%TZ) backup.all done"\n')
