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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .facts import Fact
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


_STATE_FORMAT = ('"id": {{json .ID}}, "running": {{json .State.Running}}, "status": {{json .State.Status}}, '
                 '"spec": {{json (index .Config.Labels "' + SPEC_LABEL + '")}}, "health": '
                 '{{if .State.Health}}{{json .State.Health.Status}}{{else}}null{{end}}')


def state_fact(name: str) -> Fact:
    """``docker inspect NAME``: {id, running, status, spec, health} or None when there is no such container."""
    def parse(text: str, rc: int) -> dict[str, Any] | None:
        if rc != 0 or not text.strip():
            return None
        return json.loads(text)
    return Fact(f"container:{name}", join(["docker", "inspect", "--type", "container", "--format",
                                           "{" + _STATE_FORMAT + "}", name]), parse)


def states_fact(names: Sequence[str]) -> Fact:
    """Several containers in one ``docker inspect`` (each docker CLI run costs ~45 ms on a
    small host): {name: state as in :func:`state_fact`, or None when absent}."""
    def parse(text: str, rc: int) -> dict[str, dict[str, Any] | None]:
        found = {}
        for line in text.splitlines():
            if line.strip():
                state = json.loads(line)
                found[state.pop("name").lstrip("/")] = state
        return {n: found.get(n) for n in names}
    return Fact("containers", join(["docker", "inspect", "--type", "container", "--format",
                                    '{"name": {{json .Name}}, ' + _STATE_FORMAT + "}", *names]), parse)


def image_id_fact(image: str) -> Fact:
    """The ID the tag ``image`` points to on this host (None when not pulled)."""
    return Fact(f"image:{image}", join(["docker", "image", "inspect", "--format", "{{.Id}}", image]),
                lambda t, rc: (t.strip() or None) if rc == 0 else None)


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


def network_fact(name: str) -> Fact:
    """Driver and attachable flag of a docker network (None when absent)."""
    return Fact(f"network:{name}", join(["docker", "network", "inspect", "--format",
                                         "{{.Driver}} {{.Attachable}} {{.Scope}}", name]),
                lambda t, rc: dict(zip(("driver", "attachable", "scope"), t.split())) if rc == 0 else None)


def exec_cmd(container: str, argv: list[str], *, stdin: bool = False) -> str:
    return join(["docker", "exec", *(["-i"] if stdin else []), container, *argv])


def http_ok_cmd(url: str, timeout: int = 5) -> str:
    """curl that succeeds on a 2xx answer."""
    return join(["curl", "-fsS", "-o", "/dev/null", "-m", str(timeout), url])


__all__ = ["Container", "env_file_text", "exec_cmd", "http_ok_cmd", "image_id_fact", "network_fact", "plan",
           "quote", "state_fact", "states_fact"]
