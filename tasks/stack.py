"""App stacks: render stacks/NAME/deploy.yml from hosts.env, ship the app's .env as a
content-named swarm config, deploy with --with-registry-auth, wait, verify over HTTP.

Assumes an active swarm, the shared network (net.create) and registry logins
(registry.login) on the managers.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.shell import join, quote
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

F = lazy("swarmbook.facts")
ops = lazy("swarmbook.ops")
R = lazy("swarmbook.registrycmd")
K = lazy("swarmbook.stackcmd")
config = lazy("swarmbook.config")


def _sources(stacks: Path, name: str, app_env: str | None) -> tuple[Path, Path]:
    if not name:
        refuse("stack name missing (e.g. inv stack.deploy demo)")
    template = stacks / name / "deploy.yml"
    if not template.is_file():
        known = ", ".join(sorted(p.parent.name for p in stacks.glob("*/deploy.yml")))
        refuse(f"no stack file {template} (stacks: {known or 'none'})")
    env = Path(app_env) if app_env else stacks / name / "app.env"
    if not env.is_file():
        refuse(f"app .env file {env} not found")
    return template, env


def render(settings, name, app_env=None, tag=None) -> tuple[str, str, str]:
    """(rendered stack file, .env content, config name); raises ConfigError on bad input."""
    template, env = _sources(config.stacks_path(settings), name, app_env)
    content = env.read_text()
    values = K.template_vars(settings, name, content, IMAGE_TAG=tag)
    rendered = K.render(template.read_text(), values, source=str(template))
    registry, user, password = settings["REGISTRY"], settings["REGISTRY_USER"], settings["REGISTRY_PASSWORD"]
    if registry and user and password:  # deployed --with-registry-auth: say so, as refresh-auth does
        rendered = K.with_service_labels(rendered, lambda key, svc: (
            {R.AUTH_LABEL: R.auth_mark(registry, user, password.reveal(), f"{name}_{key}")}
            if R.uses_registry(str(svc.get("image", "")), registry) else {}))
    return rendered, content, values["ENV_CONFIG"]


def _validate(settings, name=None, app_env=None, tag=None, timeout=180, **_):
    render(settings, name, app_env, tag)
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


HELP = {
    "name": "stack name: a folder under stacks/ (e.g. demo)",
    "app-env": "the app's .env file (default stacks/NAME/app.env); becomes a swarm config",
    "tag": "image tag (default IMAGE_TAG)",
    "timeout": "seconds to wait for every task to run (default 180)",
}


def _state_facts(name: str) -> list[F.Fact]:
    """Replicas and rolling-update state of a stack's services (read in one round trip)."""
    ns = quote(f"label=com.docker.stack.namespace={name}")
    return [
        F.Fact("replicas", join(["docker", "stack", "services", name, "--format", "{{.Name}} {{.Replicas}}"]),
               lambda t, rc: K.parse_replicas(t) if rc == 0 else {}),
        F.Fact("updating", f"docker service ls -q --filter {ns} | xargs -r docker service inspect --format "
                           "'{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}'",
               lambda t, rc: [u for u in t.split() if u in ("updating", "rollback_started")]),
    ]


def converged(f: dict) -> bool:
    reps = f["replicas"]
    return bool(reps) and all(r == w and w > 0 for r, w in reps.values()) and not f["updating"]


def _converge(h: Host, name: str, timeout: int) -> None:
    state: dict = {}

    def ready() -> bool:
        state.update(h.probe(*_state_facts(name)))
        return converged(state)

    try:
        h.wait(f"stack {name} to converge", ready, timeout=timeout, interval=2)
    except StepFailed:
        why = h.try_run(f"docker stack ps --no-trunc --filter desired-state=running --format "
                        f"'{{{{.Name}}}} {{{{.CurrentState}}}} {{{{.Error}}}}' {quote(name)} | head -5").stdout
        raise StepFailed(f"stack {name} not converged after {timeout}s: {state.get('replicas')}; "
                         f"{' | '.join(why.splitlines()) or 'no task info'}") from None
    _report_running(h, name, state)


def _report_running(h: Host, name: str, state: dict) -> None:
    h.ok(f"stack {name} running", ", ".join(f"{s} {r}/{w}" for s, (r, w) in state["replicas"].items()))


def _prune_configs(h: Host, old: set[str]) -> None:
    for cfg in sorted(old):
        if h.check or h.try_run(join(["docker", "config", "rm", cfg])).rc == 0:
            h.change(f"remove old config {cfg}", None, reason="no longer used")


def _verify_http(run: Run, specs: list[HostSpec], ports: list[int], timeout: int) -> None:
    def body(h: Host) -> None:
        for port in ports:
            url = f"http://127.0.0.1:{port}/"
            h.wait(f"HTTP {url}", lambda: h.try_run(join(["curl", "-fsS", "-m", "5", url])).rc == 0,
                   timeout=timeout, interval=2)
            h.ok(f"HTTP {port} answers")
    if not run.check and ports:
        run.each(specs, body)


def _deploy(run: Run, specs, name, app_env, tag, timeout, *, always: bool) -> None:
    rendered, env_content, cfg = render(run.settings, name, app_env, tag)
    path = f"{run.settings['STACK_DIR']}/{name}/deploy.yml"
    done = threading.Event()

    def body(h: Host) -> None:
        f = h.probe(F.file_state(path, "file"),
                    F.Fact("configs", join(["docker", "config", "ls", "--format", "{{.Name}}",
                                            "--filter", f"name={name}_env_"]), lambda t, rc: set(t.split())),
                    F.Fact("images", f"docker service ls --filter label=com.docker.stack.namespace={quote(name)} "
                                     "--format '{{.Name}} {{.Image}}'", lambda t, rc: t.strip()),
                    *_state_facts(name))
        changed = False
        if cfg in f["configs"]:
            h.ok(f"config {cfg}")
        else:
            h.change(f"config {cfg}", join(["docker", "config", "create", cfg, "-"]), stdin=env_content,
                     reason="new .env content")
            changed = True
        changed |= ops.put_file(h, path, rendered, state=f["file"], step=f"stack file {path}")
        if changed or always or not f["images"]:
            h.change(f"deploy stack {name}", join(["docker", "stack", "deploy", "--with-registry-auth",
                                                   "--prune", "-c", path, name]), timeout=600)
            changed = True
        else:
            h.ok(f"stack {name} deployed")
        if not h.check:
            if changed or not converged(f):
                _converge(h, name, timeout)
            else:
                _report_running(h, name, f)
            if always:
                after = h.run(f"docker service ls --filter label=com.docker.stack.namespace={quote(name)} "
                              "--format '{{.Name}} {{.Image}}'").stdout.strip()
                h.note(f"images {'changed' if after != f['images'] else 'unchanged'}: {after}")
        _prune_configs(h, f["configs"] - {cfg})
        done.set()

    run.one(specs[0], body)
    if done.is_set():
        _verify_http(run, specs, K.published_ports(rendered), timeout)


@cluster_task(group="nodes", validate=_validate, positional=["name"], help=HELP)
def deploy(run: Run, specs: list[HostSpec], name=None, app_env=None, tag=None, timeout=180):
    """Deploy a stack (file + .env config) with --with-registry-auth; wait; verify HTTP on every node."""
    _deploy(run, specs, name, app_env, tag, int(timeout), always=False)


@cluster_task(group="nodes", validate=_validate, positional=["name"], help=HELP)
def update(run: Run, specs: list[HostSpec], name=None, app_env=None, tag=None, timeout=180):
    """Redeploy a stack so services pick up a newly pushed image (pull and roll)."""
    _deploy(run, specs, name, app_env, tag, int(timeout), always=True)


ns = Collection("stack", deploy, update)
