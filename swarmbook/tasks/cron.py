"""Scheduled commands in the app image (the runbook's crontab script), on the first manager.

Assumes Docker and a registry login on that host (registry.login). Each job lives in
CRON_DIR/NAME/: run.sh (pull, then `docker run --rm` with the .env beside it mounted), .env
(0600) and cron.log; /etc/cron.d/swarmbook-NAME runs it as root, one run at a time.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import croncmd, facts, ops, config, validate
else:
    croncmd = lazy("swarmbook.croncmd")
    facts = lazy("swarmbook.facts")
    ops = lazy("swarmbook.ops")
    config = lazy("swarmbook.config")
    validate = lazy("swarmbook.validate")


def _image(settings, image=None) -> str:
    if image:
        return image
    registry = settings["REGISTRY"]
    return f"{registry + '/' if registry else ''}{settings['PROJECT']}:{settings['IMAGE_TAG']}"


def _env_file(settings, app_env=None) -> Path:
    return Path(app_env) if app_env else config.stacks_path(settings) / settings["PROJECT"] / "app.env"


def _validate(settings, name=None, schedule=None, command=None, app_env=None, image=None, entrypoint=None):
    for bad in (croncmd.bad_name(name), croncmd.bad_schedule(schedule)):
        if bad:
            refuse(bad)
    if not command or not command.strip():
        refuse("--command is empty (e.g. --command 'php /opt/www/bin/hyperf.php your_command')")
    try:
        shlex.split(command)
    except ValueError as exc:
        refuse(f"--command {command!r}: {exc}")
    if image:
        validate.image(image, "--image")
    env = _env_file(settings, app_env)
    if not env.is_file():
        refuse(f"app .env file {env} not found (--app-env FILE)")


@cluster_task(group="managers", validate=_validate, positional=["name"], help={
    "name": "job name (file names under CRON_DIR and /etc/cron.d)",
    "schedule": "cron schedule, e.g. '*/5 * * * *' or @daily",
    "command": "command run in the app image, e.g. 'php /opt/www/bin/hyperf.php your_command'",
    "app-env": "the app's .env (default stacks/PROJECT/app.env), mounted at CRON_ENV_TARGET",
    "image": "image to run (default REGISTRY/PROJECT:IMAGE_TAG)",
    "entrypoint": "override the image's entrypoint (the runbook uses php)",
})
def install(run: Run, specs: list[HostSpec], name=None, schedule=None, command=None, app_env=None, image=None,
            entrypoint=None):
    """Install a cron job that pulls the app image and runs a command in it with the .env; logs to a file."""
    s = run.settings
    p = croncmd.paths(s["CRON_DIR"], name)
    script = croncmd.script(name, _image(s, image), command, env_target=s["CRON_ENV_TARGET"], entrypoint=entrypoint or "")
    entry = croncmd.cron_entry(name, schedule, p["script"], p["log"])
    env = _env_file(s, app_env).read_text()

    def body(h: Host) -> None:
        f = h.probe(facts.command_exists("docker"), facts.command_exists("flock"),
                    *(facts.file_state(p[k], k) for k in ("script", "env", "entry")), croncmd.SERVICE_FACT)
        if not f["has:docker"]:
            h.needs("cron", "docker is not installed (run docker.install first)")
        if not f["has:flock"]:
            h.fail("cron", "flock (util-linux) is missing on this host")
        ops.put_file(h, p["env"], env, mode="0600", state=f["env"], secret=True, step=f"app .env {p['env']}")
        ops.put_file(h, p["script"], script, mode="0755", state=f["script"], step=f"script {p['script']}")
        ops.put_file(h, p["entry"], entry, mode="0644", state=f["entry"], step=f"cron entry {p['entry']}")
        if not f["cron"]:
            h.note("the cron service is not active on this host: the entry will not run until it is", level="warning")

    run.one(specs[0], body)


@cluster_task(group="managers", positional=["name"], validate=lambda settings, name=None: refuse(croncmd.bad_name(name))
              if croncmd.bad_name(name) else None, help={"name": "job name given to cron.install"})
def remove(run: Run, specs: list[HostSpec], name=None):
    """Remove a cron job's entry and script (its log and .env stay)."""
    p = croncmd.paths(run.settings["CRON_DIR"], name)

    def body(h: Host) -> None:
        f = h.probe(facts.file_state(p["entry"], "entry"), facts.file_state(p["script"], "script"))
        for k in ("entry", "script"):
            if f[k] is None:
                h.ok(f"{k} {p[k]}", "absent")
            else:
                h.change(f"remove {p[k]}", croncmd.remove_cmd(p[k]))

    run.one(specs[0], body)


ns = Collection("cron", install, remove)
