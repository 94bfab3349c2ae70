"""Pure builders for long-running single containers (GitLab, MySQL, Kong and its Postgres).

A :class:`Container` is the wanted state; its :meth:`~Container.spec_hash` goes into a label
on the container, so "is it already right?" is one ``docker inspect`` away and a second run
sends nothing. Secret environment values never reach argv: they live in a 0600 env file on
the host (``--env-file``) and are left out of the hash (a database keeps the password it was
initialised with anyway).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .facts import Fact, engine_fact, engine_filters
from .shell import join, quote

SPEC_LABEL = "swarmbook.spec"


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    hostname: str = ""
    ports: tuple[str, ...] = ()  # [addr:]host:container
    volumes: tuple[str, ...] = ()  # host:container[:opts]
    env: tuple[tuple[str, str], ...] = ()  # plain values (visible in docker inspect)
    env_file: str = ""  # host path of a 0600 file with the secret values
    network: str = ""
    restart: str = "always"
    command: tuple[str, ...] = ()
    entrypoint: str = ""
    labels: tuple[tuple[str, str], ...] = field(default=())

    def spec_hash(self, env_file_content: str = "") -> str:
        """Hash of everything but secret values (only the env file's key names count)."""
        keys = sorted(line.split("=", 1)[0] for line in env_file_content.splitlines() if "=" in line)
        data = {**self.__dict__, "env_file_keys": keys}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:16]

    def run_argv(self, spec_hash: str) -> list[str]:
        argv = ["docker", "run", "-d", "--name", self.name, "--restart", self.restart,
                "--label", f"{SPEC_LABEL}={spec_hash}"]
        for k, v in self.labels:
            argv += ["--label", f"{k}={v}"]
        if self.hostname:
            argv += ["--hostname", self.hostname]
        if self.network:
            argv += ["--network", self.network]
        for p in self.ports:
            argv += ["--publish", p]
        for v in self.volumes:
            argv += ["--volume", v]
        for k, v in self.env:
            argv += ["--env", f"{k}={v}"]
        if self.env_file:
            argv += ["--env-file", self.env_file]
        if self.entrypoint:
            argv += ["--entrypoint", self.entrypoint]
        return argv + [self.image, *self.command]


def env_file_text(values: dict[str, str]) -> str:
    """docker --env-file content (one KEY=value per line; values may not hold newlines)."""
    for k, v in values.items():
        if "\n" in v:
            raise ValueError(f"{k}: a value for --env-file cannot contain a newline")
    return "".join(f"{k}={v}\n" for k, v in values.items())


# Container, network and image facts read the engine API over its socket (one curl, ~20 ms)
# instead of running the docker CLI (~45 ms each on a small host): probes run several.

def _state(c: dict[str, Any]) -> dict[str, Any]:
    """{id, running, status, spec, health} from the API's container inspect."""
    st = c.get("State") or {}
    return {"id": c.get("Id"), "running": bool(st.get("Running")), "status": st.get("Status"),
            "spec": ((c.get("Config") or {}).get("Labels") or {}).get(SPEC_LABEL),
            "health": (st.get("Health") or {}).get("Status")}


_LISTED_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def _listed_state(c: dict[str, Any]) -> dict[str, Any]:
    """The same from the API's container list (health only shows in its Status text)."""
    m = _LISTED_HEALTH.search(c.get("Status") or "")
    return {"id": c.get("Id"), "running": c.get("State") == "running", "status": c.get("State"),
            "spec": (c.get("Labels") or {}).get(SPEC_LABEL),
            "health": ("starting" if m.group(1) == "health: starting" else m.group(1)) if m else None}


def state_fact(name: str) -> Fact:
    """Container ``name``: {id, running, status, spec, health}, or None when there is no such container."""
    return engine_fact(f"container:{name}", f"/containers/{name}/json", _state)


def states_fact(names: Sequence[str]) -> Fact:
    """Several containers in one call: {name: state as in :func:`state_fact`, or None when absent}."""
    def convert(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any] | None]:
        found = {n.lstrip("/"): _listed_state(c) for c in listed for n in c.get("Names") or []}
        return {n: found.get(n) for n in names}
    filters = engine_filters(name=[f"^/{n}$" for n in names])
    return engine_fact("containers", f"/containers/json?all=true&filters={filters}", convert,
                       absent=dict.fromkeys(names))


def image_id_fact(image: str) -> Fact:
    """The ID the tag ``image`` points to on this host (None when not pulled)."""
    return engine_fact(f"image:{image}", f"/images/{image}/json", lambda i: i.get("Id"))


def plan(c: Container, state: dict[str, Any] | None, spec_hash: str, *, env_changed: bool = False) -> tuple[str, list[str]]:
    """(why, commands): what brings the container to the wanted state ('' and [] when it is)."""
    run = join(c.run_argv(spec_hash))
    if state is None:
        return "absent", [run]
    if state.get("spec") != spec_hash or env_changed:
        why = "secret env changed" if state.get("spec") == spec_hash else "configuration changed"
        return why, [join(["docker", "rm", "-f", c.name]), run]
    if not state.get("running"):
        return f"was {state.get('status')}", [join(["docker", "start", c.name])]
    return "", []


def image_label_fact(image: str, label: str) -> Fact:
    """Label ``label`` of image ``image`` here ('' when the image or the label is missing)."""
    return engine_fact("label", f"/images/{image}/json",
                       lambda i: ((i.get("Config") or {}).get("Labels") or {}).get(label, ""), absent="")


def network_fact(name: str) -> Fact:
    """{driver, attachable, scope} of a docker network (None when absent)."""
    return engine_fact(f"network:{name}", f"/networks/{name}",
                       lambda n: {"driver": n.get("Driver"), "attachable": bool(n.get("Attachable")),
                                  "scope": n.get("Scope")})


def exec_cmd(container: str, argv: list[str], *, stdin: bool = False) -> str:
    return join(["docker", "exec", *(["-i"] if stdin else []), container, *argv])


def build_cmd(image: str, labels: dict[str, str]) -> str:
    """``docker build`` of the context tar arriving on stdin, tagged ``image``, with ``labels``."""
    argv = ["docker", "build", "-q"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return join([*argv, "-t", image, "-"])


def push_cmd(image: str) -> str:
    return join(["docker", "push", image])


def http_ok_cmd(url: str, timeout: int = 5) -> str:
    """curl that succeeds on a 2xx answer."""
    return join(["curl", "-fsS", "-o", "/dev/null", "-m", str(timeout), url])


__all__ = ["Container", "build_cmd", "env_file_text", "exec_cmd", "http_ok_cmd", "image_id_fact", "image_label_fact",
           "network_fact", "plan", "push_cmd", "quote", "state_fact", "states_fact"]
