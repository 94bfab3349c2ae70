"""Facts: a read-only command plus a parser of its output (pure; tested on captured output).

:func:`batch` joins several facts into one remote script, so a task learns everything it
needs about a host in one SSH round trip; :func:`split` cuts the output back apart.
"""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .shell import join, quote


@dataclass(frozen=True)
class Fact:
    name: str
    command: str
    parse: Callable[[str, int], Any]


def batch(facts: list[Fact]) -> tuple[str, str]:
    """One script that runs every fact in a subshell and marks where each output ends."""
    token = secrets.token_hex(6)
    parts = []
    for i, f in enumerate(facts):
        parts.append(f"#fact {f.name.replace(' ', '_')}\nprintf '%s\\n' '@@{token}:{i}@@'\n( {f.command}\n) 2>/dev/null\n"
                     f"printf '\\n@@{token}:{i}:rc=%s@@\\n' \"$?\"")
    return "\n".join(parts), token


def split(output: str, token: str, facts: list[Fact]) -> dict[str, Any]:
    """Cut batched output back into each fact's (stdout, rc) and parse it."""
    values: dict[str, Any] = {}
    for i, f in enumerate(facts):
        start = f"@@{token}:{i}@@\n"
        end = f"\n@@{token}:{i}:rc="
        a = output.find(start)
        b = output.find(end, a)
        if a < 0 or b < 0:
            raise ValueError(f"fact {f.name}: output missing (remote shell failed?)")
        text = output[a + len(start):b]
        rc_text = output[b + len(end):output.find("@@", b + len(end))]
        values[f.name] = f.parse(text, int(rc_text))
    return values


# --- parsers -------------------------------------------------------------------------

def parse_os_release(text: str, rc: int = 0) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            info[k.strip()] = v.strip().strip('"').strip("'")
    return info


def os_family(info: dict[str, str]) -> str:
    """debian | rhel | unknown, from /etc/os-release's ID and ID_LIKE."""
    ids = {info.get("ID", "").lower(), *info.get("ID_LIKE", "").lower().split()}
    if ids & {"debian", "ubuntu"}:
        return "debian"
    if ids & {"rhel", "centos", "fedora", "tencentos", "opencloudos", "rocky", "almalinux", "tlinux"}:
        return "rhel"
    return "unknown"


def _file_state(text: str, rc: int) -> dict[str, Any] | None:
    """``stat`` line then content; None when the file does not exist."""
    if rc != 0:
        return None
    head, _, content = text.partition("\n")
    owner, group, mode = head.split()
    return {"owner": owner, "group": group, "mode": mode, "content": content}


# --- facts ---------------------------------------------------------------------------

OS_RELEASE = Fact("os", "cat /etc/os-release", lambda t, rc: parse_os_release(t))


def file_state(path: str, name: str | None = None) -> Fact:
    """Owner, group, octal mode and content of a text file (None when absent)."""
    q = quote(path)
    return Fact(name or f"file:{path}",
                f"test -f {q} && stat -c '%U %G %a' {q} && cat {q}", _file_state)


def command_exists(cmd: str) -> Fact:
    return Fact(f"has:{cmd}", f"command -v {quote(cmd)}", lambda t, rc: rc == 0 and bool(t.strip()))


def unit_state(unit: str) -> Fact:
    """{"active": bool, "enabled": bool} of a systemd unit, from one ``systemctl show``
    (``is-active`` plus ``is-enabled`` cost two systemctl runs, ~11 ms of host CPU each)."""
    return Fact(f"unit:{unit}", join(["systemctl", "show", "-p", "ActiveState", "-p", "UnitFileState", unit]),
                parse_unit_state)


def unit_file(unit: str, name: str | None = None) -> Fact:
    """A unit's files as ``systemctl cat`` prints them (None when there is no such unit)."""
    return Fact(name or f"unit file:{unit}", join(["systemctl", "cat", unit]), lambda t, rc: t if rc == 0 else None)


def parse_unit_state(text: str, rc: int) -> dict[str, bool]:
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {"active": props.get("ActiveState") == "active",
            "enabled": props.get("UnitFileState") in ("enabled", "static", "alias", "indirect")}


def unit_stale(unit: str, paths: list[str]) -> Fact:
    """True when ``unit`` runs with older config than ``paths`` hold: a file changed after it
    last started, or systemd needs a daemon-reload (e.g. a run killed between write and restart).
    None when the unit is not running."""
    u = quote(unit)
    # one systemctl run; it prints properties in its own order, hence the loop
    cmd = (f"systemctl show -p ActiveEnterTimestamp -p NeedDaemonReload {u} | {{ "
           "while IFS== read -r k v; do case $k in ActiveEnterTimestamp) t=$v;; NeedDaemonReload) r=$v;; esac; done; "
           "[ -n \"$t\" ] || exit 1; "
           f"echo \"$(date -d \"$t\" +%s) $r "
           f"$(stat -c %Y {' '.join(quote(p) for p in paths)} 2>/dev/null | sort -n | tail -1)\"; }}")
    return Fact(f"stale:{unit}", cmd, parse_unit_stale)


def parse_unit_stale(text: str, rc: int) -> bool | None:
    parts = text.split()
    if rc != 0 or len(parts) < 2 or not parts[0].isdigit():
        return None
    started, reload = int(parts[0]), parts[1]
    newest = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
    return reload == "yes" or newest > started


def user_groups(user: str) -> Fact:
    return Fact(f"groups:{user}", join(["id", "-nG", user]),
                lambda t, rc: set(t.split()) if rc == 0 else None)


# Every swarm service's spec as one JSON line (parsers: netcheck ingress users, registry auth).
SERVICE_SPECS_CMD = "docker service ls -q | xargs -r docker service inspect --format '{{json .Spec}}'"


# The local engine's API socket. A GET through curl answers in ~20 ms; each docker CLI run
# costs ~45 ms on a small host (a large Go binary starting), and probes run several.
ENGINE_SOCKET = "/var/run/docker.sock"


def engine_get_cmd(path: str, *, error_body: bool = False) -> str:
    """GET ``path`` (e.g. ``/info``) from the local Docker Engine API; fails on HTTP errors
    (exit 22), printing the engine's error answer (``{"message": ...}``) when ``error_body``."""
    fail = ["-sS", "--fail-with-body"] if error_body else ["-sSf"]
    return join(["curl", *fail, "--max-time", "30", "--unix-socket", ENGINE_SOCKET, f"http://localhost{path}"])


def engine_filters(**wanted: list[str]) -> str:
    """The engine API's ``filters`` query value, e.g. ``engine_filters(label=["a=b"])``."""
    return urllib.parse.quote(json.dumps(wanted, separators=(",", ":")))


def engine_fact(name: str, path: str, convert: Callable[[Any], Any], absent: Any = None) -> Fact:
    """A GET on the engine API whose JSON answer ``convert`` turns into the fact's value;
    ``absent`` when the engine does not answer or answers an error (e.g. 404: no such object)."""
    def parse(text: str, rc: int) -> Any:
        return convert(json.loads(text)) if rc == 0 and text.strip() else absent
    return Fact(name, engine_get_cmd(path), parse)


def docker_info() -> Fact:
    """``docker info`` as JSON (None when the daemon does not answer): the engine API's /info,
    or the docker CLI where curl is missing."""
    def parse(text: str, rc: int) -> dict[str, Any] | None:
        if rc != 0 or not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None
    return Fact("docker_info", f"{engine_get_cmd('/info')} || docker info --format '{{{{json .}}}}'", parse)


def apt_versions(packages: list[str]) -> Fact:
    """{package: [(version, suite), ...]} the host's apt sources offer, best first
    (``apt-cache madison``; {} where there is no apt or the lists know none of them)."""
    return Fact("apt_versions", join(["apt-cache", "madison", *packages]), parse_apt_versions)


def parse_apt_versions(text: str, rc: int = 0) -> dict[str, list[tuple[str, str]]]:
    """``apt-cache madison`` lines: ``docker.io | 26.1.5+dfsg1-9+b9 | http://deb.debian.org/debian
    trixie/main amd64 Packages`` (source-package lines, ``... Sources``, are left out)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        cols = [c.strip() for c in line.split("|")]
        if len(cols) != 3 or not cols[2].endswith("Packages"):
            continue
        where = cols[2].split()
        suite = where[1].split("/")[0] if len(where) > 1 else ""
        versions = out.setdefault(cols[0], [])
        if (cols[1], suite) not in versions:
            versions.append((cols[1], suite))
    return out


def installed_versions(packages: list[str]) -> Fact:
    """{package: version} of those of ``packages`` that dpkg has installed ({} without dpkg)."""
    return Fact("installed_versions", join(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package} ${Version}\\n",
                                            *packages]), parse_installed_versions)


def parse_installed_versions(text: str, rc: int = 0) -> dict[str, str]:
    """``dpkg-query`` lines ``ii  docker.io 28.5.2+dfsg4-1``; other states (rc: removed, config
    files left; un: known, not installed) are not installed. dpkg-query exits 1 when one of the
    packages is unknown and still prints the others."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ii":
            out[parts[1]] = parts[2]
    return out


# The version of the engine that runs now (the API's /version; None when it does not answer).
SERVER_VERSION = engine_fact("server_version", "/version", lambda v: v.get("Version") or None)

ENGINE_VERSION = Fact("engine_version", "dockerd --version",
                      lambda t, rc: t.split(",")[0].replace("Docker version", "").strip() if rc == 0 else None)
