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
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import facts, ops, registrycmd, stackcmd, kernelcmd, config, validate, givenup, nodecmd
else:
    givenup = lazy("swarmbook.givenup")
    nodecmd = lazy("swarmbook.nodecmd")
    facts = lazy("swarmbook.facts")
    ops = lazy("swarmbook.ops")
    registrycmd = lazy("swarmbook.registrycmd")
    stackcmd = lazy("swarmbook.stackcmd")
    kernelcmd = lazy("swarmbook.kernelcmd")
    config = lazy("swarmbook.config")
    validate = lazy("swarmbook.validate")


def _sources(stacks: Path, name: str, app_env: str | None) -> tuple[Path, Path]:
    if not name:
        refuse("stack name missing (e.g. inv stack.deploy demo)")
    validate.stack_name(name, "stack name")  # a swarm name: no / or .., so it stays inside STACKS_PATH
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
    values = stackcmd.template_vars(settings, name, content, IMAGE_TAG=tag)
    rendered = stackcmd.render(template.read_text(), values, source=str(template))
    registry, user, password = settings["REGISTRY"], settings["REGISTRY_USER"], settings["REGISTRY_PASSWORD"]
    if registry and user and password:  # deployed --with-registry-auth: say so, as refresh-auth does
        rendered = stackcmd.with_service_labels(rendered, lambda key, svc: (
            {registrycmd.AUTH_LABEL: registrycmd.auth_mark(registry, user, password.reveal(), f"{name}_{key}")}
            if registrycmd.uses_registry(str(svc.get("image", "")), registry) else {}))
    return rendered, content, values["ENV_CONFIG"]


def _validate(settings, name=None, app_env=None, tag=None, timeout=180, **_):
    if tag is not None:
        validate.tag(tag, "--tag")
    render(settings, name, app_env, tag)
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


HELP = {
    "name": "stack name: a folder under stacks/ (e.g. demo)",
    "app-env": "the app's .env file (default stacks/NAME/app.env); becomes a swarm config",
    "tag": "image tag (default IMAGE_TAG)",
    "timeout": "seconds to wait for every task to run (default 180)",
}


def _replicas(services: dict | None) -> str:
    return ", ".join(f"{n} {s['replicas'][0]}/{s['replicas'][1]}" if s["replicas"] else f"{n} ?"
                     for n, s in (services or {}).items())


def converged(services: dict | None, tasks: list | None = None) -> bool:
    """Every service of the stack runs all its tasks, none is in a rolling update, and (given
    the swarm's tasks) every task meant to run was made from its service's current spec.
    With a healthcheck a task counts as running only once healthy."""
    return bool(services) and all(s["replicas"] and s["replicas"][0] == s["replicas"][1] > 0 and not s["updating"]
                                  for s in services.values()) \
        and (tasks is None or not any(stackcmd.stale_tasks(services, tasks).values()))


def _settled(state: dict) -> bool:
    """Converged, no task on its way, and no slot swarm stopped restarting."""
    return (converged(state["services"], state.get("tasks")) and not state["gave"]
            and not givenup.in_progress(state["services"] or {}, state["stack_tasks"]))


def _look(h: Host, name: str, state: dict) -> None:
    state.update(h.probe(stackcmd.services_fact(name), stackcmd.running_tasks_fact(), givenup.stack_tasks_fact(name),
                         nodecmd.NODE_LIST))
    state["gave"] = givenup.given_up(state["services"] or {}, state["stack_tasks"], state["node_list"])


def _restart(h: Host, gave: dict[str, list[str]], forced: set[str]) -> None:
    """A new task for every slot of each service swarm stopped restarting (once per run)."""
    for svc, where in sorted(gave.items()):
        if svc not in forced:
            forced.add(svc)
            h.change(f"restart {svc}", givenup.force_cmd(svc), timeout=900,
                     reason=f"swarm stopped restarting it ({'; '.join(where)}; restart_policy max_attempts "
                            "used up): a new task for every slot")


def _converge(h: Host, name: str, timeout: int, forced: set[str] | None = None) -> dict:
    """Wait until the stack has converged; restart (once) a service swarm gave up restarting;
    a service swarm rolled back fails the step."""
    state: dict = {}
    forced = set() if forced is None else forced

    def ready() -> bool:
        _look(h, name, state)
        return bool(set(state["gave"]) - forced) or _settled(state)

    while True:
        try:
            h.wait(f"stack {name} to converge", ready, timeout=timeout, interval=2)
        except StepFailed:
            why = h.try_run(stackcmd.tasks_state_cmd(name)).stdout
            gave = "; ".join(f"{s}: swarm stopped restarting it ({', '.join(w)})"
                             for s, w in sorted(state.get("gave", {}).items()))
            raise StepFailed(f"stack {name} not converged after {timeout}s: {_replicas(state.get('services'))}; "
                             f"{gave + '; ' if gave else ''}{' | '.join(why.splitlines()) or 'no task info'}") from None
        if not set(state["gave"]) - forced:
            break
        _restart(h, state["gave"], forced)
    back = stackcmd.rolled_back(state["services"])
    if back:
        h.fail(f"stack {name}", "; ".join(
            f"{svc} was rolled back ({why}): {state['services'][svc]['image']} serves, not the deployed file"
            for svc, why in sorted(back.items())))
    _report_running(h, name, state["services"])
    return state["services"]


def _report_running(h: Host, name: str, services: dict) -> None:
    h.ok(f"stack {name} running", _replicas(services))


def _prune_configs(h: Host, old: set[str]) -> None:
    for cfg in sorted(old):
        if h.check or h.try_run(stackcmd.config_rm_cmd(cfg)).rc == 0:
            h.change(f"remove old config {cfg}", None, reason="no longer used")


def _verify_http(run: Run, specs: list[HostSpec], ports: list[int], timeout: int) -> None:
    def body(h: Host) -> None:
        for port in ports:
            h.wait(f"HTTP http://127.0.0.1:{port}/", lambda: h.try_run(stackcmd.http_answers_cmd(port)).rc == 0,
                   timeout=timeout, interval=2)
            h.ok(f"HTTP {port} answers")
    if not run.check and ports:
        run.each(specs, body)


def _why(changed: bool, back: dict, drift: list[str]) -> str:
    if changed:
        return ""
    if back:
        return f"{', '.join(sorted(back))} rolled back from this file"
    return "drift: " + "; ".join(drift[:4]) + (f" (+{len(drift) - 4} more)" if len(drift) > 4 else "")


def _record(h: Host, path: str, state: dict | None, services: dict) -> None:
    """Keep the specs as they run after this deploy: the next run compares against them (drift).
    Bookkeeping, not a change to the cluster: not reported as one."""
    text = stackcmd.snapshot_text(services)
    if (state or {}).get("content") != text:
        h.run(ops.write_file_cmd(path, mode="0600"), stdin=text, step=f"record {path}")


def _deploy(run: Run, specs, name, app_env, tag, timeout, *, always: bool) -> None:
    rendered, env_content, cfg = render(run.settings, name, app_env, tag)
    path = f"{run.settings['STACK_DIR']}/{name}/deploy.yml"
    snapshot = f"{run.settings['STACK_DIR']}/{name}/{stackcmd.SNAPSHOT}"
    done = threading.Event()

    def body(h: Host) -> None:
        f = h.probe(facts.file_state(path, "file"), facts.file_state(snapshot, "snapshot"), stackcmd.configs_fact(f"{name}_env_"),
                    stackcmd.services_fact(name), kernelcmd.IPVS_FACT, givenup.stack_tasks_fact(name), nodecmd.NODE_LIST)
        services = f["services"] or {}
        if any(s["replicas"] is None for s in services.values()):
            h.fail(f"stack {name}", "the engine reports no task counts (API < 1.41): stack.deploy needs Docker 20.10+")
        stack_file = rendered
        if run.settings["STACK_IPVS_SYSCTLS"] == "auto":
            if f["ipvs"]:  # Docker 20.10+ applies them
                stack_file = stackcmd.with_sysctls(rendered, kernelcmd.IPVS_SYSCTLS)
                h.ok("ipvs sysctls", ", ".join(f"{k}={v}" for k, v in kernelcmd.IPVS_SYSCTLS.items()))
            else:
                h.ok("ipvs sysctls", f"left out: this kernel has no IPVS ({kernelcmd.IPVS_DIR}), a service would not start")
        changed = False
        if cfg in f["configs"]:
            h.ok(f"config {cfg}")
        else:
            h.change(f"config {cfg}", stackcmd.config_create_cmd(cfg), stdin=env_content,
                     reason="new .env content")
            changed = True
        changed |= ops.put_file(h, path, stack_file, state=f["file"], step=f"stack file {path}")
        back = stackcmd.rolled_back(services)
        drift = [] if back else stackcmd.drift((f["snapshot"] or {}).get("content"), services)
        if changed or always or not services or back or drift:
            h.change(f"deploy stack {name}", stackcmd.deploy_cmd(path, name), timeout=600, reason=_why(changed, back, drift))
            changed = True
        else:
            h.ok(f"stack {name} deployed", "running specs as deployed")
        gave = givenup.given_up(services, f["stack_tasks"], f["node_list"])
        forced: set[str] = set()
        if gave and not changed:  # a deploy that changed a spec makes new tasks by itself
            _restart(h, gave, forced)
            changed = True
        if not h.check:
            if changed or not _settled({"services": services, "gave": gave, "stack_tasks": f["stack_tasks"]}):
                services = _converge(h, name, timeout, forced)
            else:
                _report_running(h, name, services)
            _record(h, snapshot, f["snapshot"], services)
            if always:
                after = {n: s["image"] for n, s in (h.probe(stackcmd.services_fact(name))["services"] or {}).items()}
                before = {n: s["image"] for n, s in services.items()}
                h.note(f"images {'changed' if after != before else 'unchanged'}: "
                       f"{', '.join(f'{n} {i}' for n, i in sorted(after.items()))}")
        _prune_configs(h, f["configs"] - {cfg})
        done.set()

    run.one(specs[0], body)
    if done.is_set():
        _verify_http(run, specs, stackcmd.published_ports(rendered), timeout)


@cluster_task(group="nodes", validate=_validate, positional=["name"], help=HELP)
def deploy(run: Run, specs: list[HostSpec], name=None, app_env=None, tag=None, timeout=180):
    """Deploy a stack (file + .env config) with --with-registry-auth; wait; verify HTTP on every node."""
    _deploy(run, specs, name, app_env, tag, int(timeout), always=False)


@cluster_task(group="nodes", validate=_validate, positional=["name"], help=HELP)
def update(run: Run, specs: list[HostSpec], name=None, app_env=None, tag=None, timeout=180):
    """Redeploy a stack so services pick up a newly pushed image (pull and roll)."""
    _deploy(run, specs, name, app_env, tag, int(timeout), always=True)


def _validate_rollback(settings, name=None, timeout=180):
    if not name:
        refuse("stack name missing (e.g. inv stack.rollback demo)")
    validate.stack_name(name, "stack name")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="managers", validate=_validate_rollback, positional=["name"], help={
    "name": "stack name (e.g. demo)",
    "timeout": "seconds to wait for every task to run the previous spec (default 180)",
})
def rollback(run: Run, specs: list[HostSpec], name=None, timeout=180):
    """Return every service of a stack to its previous spec (swarm keeps one); wait until it runs."""

    def body(h: Host) -> None:
        services = h.probe(stackcmd.services_fact(name))["services"] or {}
        if not services:
            h.fail(f"stack {name}", f"no service of stack {name} on this manager")
        changed = False
        for svc, s in sorted(services.items()):
            if s["update"] in stackcmd.ROLLED_BACK:
                h.ok(f"rollback {svc}", f"already rolled back: {s['image']}")
            elif not s["previous"]:
                h.ok(f"rollback {svc}", "no previous spec to return to")
            else:
                h.change(f"rollback {svc}", stackcmd.rollback_cmd(svc), reason=f"from {s['image']}")
                changed = True
        if changed and not h.check:
            _converge_rolled(h, name, timeout)

    run.one(specs[0], body)


def _converge_rolled(h: Host, name: str, timeout: int) -> None:
    """After stack.rollback: converged on the previous spec (a rolled-back state is the goal)."""
    state: dict = {}

    def ready() -> bool:
        state.update(h.probe(stackcmd.services_fact(name), stackcmd.running_tasks_fact()))
        return converged(state["services"], state["tasks"])

    h.wait(f"stack {name} to run its previous spec", ready, timeout=timeout, interval=2)
    _report_running(h, name, state["services"])


ns = Collection("stack", deploy, update, rollback)
