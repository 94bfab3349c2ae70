"""The image registry: log every node in (and gitlab-runner where it exists), refresh service auth.

Assumes Docker on every node. The password comes from REGISTRY_PASSWORD (environment beats
hosts.env) and only ever travels on stdin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, host_task, refuse, require

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import facts, ops, registrycmd, validate
else:
    facts = lazy("swarmbook.facts")
    ops = lazy("swarmbook.ops")
    registrycmd = lazy("swarmbook.registrycmd")
    validate = lazy("swarmbook.validate")

RUNNER_USER = "gitlab-runner"


def _need_registry(settings, **_):
    require(settings, "REGISTRY", "REGISTRY_USER", "REGISTRY_PASSWORD")
    ca = settings["REGISTRY_CA"]
    if ca and not Path(ca).is_file():
        refuse(f"REGISTRY_CA {ca} is not a file")


@host_task(group="all", validate=_need_registry, help={})
def login(h: Host):
    """Log Docker into REGISTRY on every host (root, and gitlab-runner where present)."""
    s = h.settings
    registry, user, password = s["REGISTRY"], s["REGISTRY_USER"], s["REGISTRY_PASSWORD"]
    found = h.probe(registrycmd.docker_config_fact("root"), registrycmd.docker_config_fact(RUNNER_USER), facts.user_groups(RUNNER_USER),
                    *([facts.file_state(registrycmd.ca_path(registry), "ca")] if s["REGISTRY_CA"] else []))
    if s["REGISTRY_CA"]:
        ops.put_file(h, registrycmd.ca_path(registry), Path(s["REGISTRY_CA"]).read_text(), state=found["ca"],
                     step=f"CA for {registry}")
    for as_user in ("root", RUNNER_USER):
        cfg = found[f"dockercfg:{as_user}"]
        if cfg is None:
            continue  # no such user on this host
        if as_user == RUNNER_USER and "docker" not in (found[f"groups:{RUNNER_USER}"] or set()):
            h.skip(f"login {registry} as {as_user}", "not in the docker group yet: runner.grant adds it and logs in")
            continue
        if registrycmd.login_current(cfg, registry, user, password.reveal()):
            h.ok(f"login {registry} as {as_user}")
        else:
            h.change(f"login {registry} as {as_user}", registrycmd.login_cmd(registry, user, as_user=as_user),
                     stdin=password, reason=f"user {user}")


def _validate_refresh(settings, services=None):
    _need_registry(settings)
    for name in (services or "").split(",") if services is not None else ():
        validate.swarm_name(name.strip(), "--services")


@cluster_task(group="managers", name="refresh-auth", validate=_validate_refresh, help={
    "services": "comma list of services (default: every service using an image from REGISTRY)",
})
def refresh_auth(run: Run, specs: list[HostSpec], services=None):
    """Push the current registry login to services (after a password change): update --with-registry-auth."""
    s = run.settings
    registry, user, password = s["REGISTRY"], s["REGISTRY_USER"], s["REGISTRY_PASSWORD"]

    def body(h: Host) -> None:
        found = h.probe(registrycmd.docker_config_fact("root"), registrycmd.SERVICES)
        if not registrycmd.login_current(found["dockercfg:root"], registry, user, password.reveal()):
            h.fail("registry auth", f"{h.name} is not logged in to {registry} with the current password: "
                                    "run registry.login first")
        known = found["services"]
        if services:
            names = [x.strip() for x in services.split(",") if x.strip()]
            missing = [n for n in names if n not in known]
            if missing:
                h.fail("registry auth", f"no such service: {', '.join(missing)}")
        else:
            names = sorted(n for n, v in known.items() if registrycmd.uses_registry(v["image"], registry))
        if not names:
            h.ok("registry auth", f"no services use {registry}")
        for name in names:
            mark = registrycmd.auth_mark(registry, user, password.reveal(), name)
            if known[name]["mark"] == mark:
                h.ok(f"auth of {name}", "holds the current login")
            else:
                h.change(f"auth of {name}", registrycmd.refresh_cmd(name, mark), timeout=900,
                         reason="update --with-registry-auth")

    run.one(specs[0], body)


ns = Collection("registry", login, refresh_auth)
