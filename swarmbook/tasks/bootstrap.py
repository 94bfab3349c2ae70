"""bootstrap-all: the whole runbook, in order, from hosts.env; steps whose group is empty or
whose settings are missing are skipped. One reporter, one recap, one exit code."""

from invoke import task
from invoke.exceptions import Exit

from swarmbook.taskdef import COMMON_HELP, LOCK_HELP, SwarmbookTask, cluster_lock, execute, exit_for, modes

from . import docker, gitlab, image, kong, mysql, net, portainer, registry, runner, sshd, stack, swarm


def _need(settings, *keys: str, group: str | None = None) -> str:
    """'' when ``group`` has hosts and every key is set, else why the step is skipped."""
    if group and not settings.group(group):
        return "RUNNERS and DEPLOY_RUNNERS are empty" if group == "runner_hosts" else f"{group.upper()} is empty"
    missing = [k for k in keys if not settings[k]]
    return f"{', '.join(missing)} not set" if missing else ""


def plan(settings) -> list[tuple[object, dict, str]]:
    """(task, kwargs, why-skipped or '') in the runbook's order."""
    s = settings
    reg = _need(s, "REGISTRY", "REGISTRY_USER", "REGISTRY_PASSWORD")
    return [
        (docker.install, {}, ""),
        (docker.mirrors, {}, _need(s, "DOCKER_MIRRORS")),
        (sshd.move_port, {}, _need(s, "SSHD_PORT", group="gitlab")),
        (gitlab.up, {}, _need(s, group="gitlab")),
        (runner.install, {}, _need(s, group="runner_hosts")),
        (runner.register, {"role": "builder"}, _need(s, "RUNNER_TOKEN", group="runners")),
        (runner.register, {"role": "deploy"}, _need(s, "DEPLOY_RUNNER_TOKEN", group="deploy_runners")),
        (runner.concurrency, {}, _need(s, group="runner_hosts")),
        (swarm.init, {}, _need(s, group="managers")),
        (net.create, {}, _need(s, group="managers")),
        (registry.login, {}, reg),
        (runner.grant, {}, reg or _need(s, group="runner_hosts")),
        (mysql.up, {}, _need(s, "MYSQL_ROOT_PASSWORD", group="managers")),
        (portainer.up, {}, _need(s, group="managers")),
        (image.build_push, {}, reg or _need(s, group="build")),
        (stack.deploy, {"name": s["PROJECT"]}, reg),
        (kong.bootstrap, {}, _need(s, "KONG_PG_PASSWORD", group="kong")),
    ]


@task(name="bootstrap-all", help={**COMMON_HELP, **LOCK_HELP}, klass=SwarmbookTask)
def bootstrap_all(c, env_file=None, check=False, json=False, no_lock=False):
    """Run the whole runbook against hosts.env in order; a second run reports 0 changed."""
    from swarmbook import config
    from swarmbook.engine import Run
    from swarmbook.report import Reporter

    check, json = modes(check, json)
    try:
        settings = config.load(env_file)
        steps = plan(settings)
        for t, kwargs, skip in steps:  # validate everything before touching any host
            spec = t.body.swarmbook
            if not skip and spec.validate:
                spec.validate(settings, **kwargs)
        reporter = Reporter(json_lines=json)
        for w in settings.warnings:
            reporter.note(w, level="warning")
        run = Run("bootstrap-all", settings, reporter, check=check)
        with cluster_lock(run, list(settings.group("all")), no_lock=no_lock):
            _stages(steps, env_file, reporter, check)
    except Exception as exc:  # bad input, a refusal, or a bug: one line each
        raise exit_for(exc, json_lines=json, title="bootstrap-all") from None
    reporter.recap("bootstrap-all" + (" (check mode: nothing changed)" if check else ""), run.started)
    failed = reporter.failed_hosts()
    if failed:
        raise Exit(f"swarmbook: bootstrap-all failed on {', '.join(failed)}", code=1)


def _stages(steps, env_file, reporter, check) -> None:
    from swarmbook import config
    from swarmbook.engine import Run

    for t, kwargs, skip in steps:
        spec = t.body.swarmbook
        title = spec.title + "".join(f" --{k.replace('_', '-')} {v}" for k, v in kwargs.items())
        if skip:
            reporter.note(f"skip {title}: {skip}")
            continue
        reporter.note(f"== {title}")
        settings = config.load(env_file)  # a step may have recorded a new SSH port
        stage = Run(spec.title, settings, reporter, check=check)
        targets = list(settings.group(spec.group))
        execute(spec, stage, targets, (), kwargs)
        if spec.cluster and targets and targets[0].host in stage.failed():
            reporter.note(f"{spec.title} failed on {targets[0].host}, which leads that step; stopping",
                          level="error")
            break
