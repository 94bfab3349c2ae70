"""Every backup of the cluster in one run: `backup.all --to DIR` calls swarm.backup, mysql.backup,
kong.backup, portainer.backup and gitlab.backup (the tasks themselves, with their checks and
file format) into one new dated folder DIR/YYYYMMDDTHHMMSSZ (0700) with a manifest.json (what,
host, file, size, sha256, seconds per part); `--keep N` then removes older folders of its own.
`backup.cron` installs it as a cron job on this machine.

Assumes the hosts.env of the cluster (each part's own settings: MYSQL_ROOT_PASSWORD, the KONG
and GITLAB groups ...). A part whose group or settings are empty, or that is not deployed (no
mysql / kong-database / gitlab container, no portainer service, no swarm), is skipped and said
so. The swarm part runs last: it stops a manager's engine for the copy (see swarm.backup), and
containers on that host (MySQL, Kong, GitLab where they share it) stop and start with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import time
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from swarmbook.lazy import lazy
from swarmbook.taskdef import COMMON_HELP, LOCK_HELP, SwarmbookTask, cluster_lock, execute, exit_for, modes, refuse

from . import gitlab, kong, mysql, portainer, swarmstate
from .bootstrap import _need

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import backupfile, containercmd, croncmd, facts, gitlabcmd, kongcmd, mysqlcmd, portainercmd, swarmcmd, validate
else:
    backupfile = lazy("swarmbook.backupfile")
    containercmd = lazy("swarmbook.containercmd")
    croncmd = lazy("swarmbook.croncmd")
    facts = lazy("swarmbook.facts")
    gitlabcmd = lazy("swarmbook.gitlabcmd")
    kongcmd = lazy("swarmbook.kongcmd")
    mysqlcmd = lazy("swarmbook.mysqlcmd")
    portainercmd = lazy("swarmbook.portainercmd")
    swarmcmd = lazy("swarmbook.swarmcmd")
    validate = lazy("swarmbook.validate")


def plan(settings, offline: bool = False) -> list[tuple[str, object, dict, str]]:
    """(part, task, kwargs, why skipped or '') in the order they run: the swarm last (its engine stop
    restarts the containers of that manager)."""
    s = settings
    return [
        ("mysql", mysql.backup, {}, _need(s, "MYSQL_ROOT_PASSWORD", group="managers")),
        ("kong", kong.backup, {}, _need(s, group="kong")),
        ("gitlab", gitlab.backup, {}, _need(s, group="gitlab")),
        ("portainer", portainer.backup, {}, _need(s, group="managers")),
        ("swarm", swarmstate.backup, {"offline": offline}, _need(s, group="managers")),
    ]


def _probes() -> dict[str, tuple[str, object, object]]:
    """part -> (group whose first host is asked, fact, verdict(value) -> why it is not deployed or '')."""
    def container(name: str):
        return lambda v: "" if v else f"no container {name}"

    def swarm(info):
        sw = swarmcmd.parse_swarm(info)
        return "" if sw.is_manager else f"not a manager of an active swarm ({sw.state})"

    return {
        "mysql": ("managers", containercmd.state_fact(mysqlcmd.NAME), container(mysqlcmd.NAME)),
        "kong": ("kong", containercmd.state_fact(kongcmd.DB), container(kongcmd.DB)),
        "gitlab": ("gitlab", containercmd.state_fact(gitlabcmd.CONTAINER), container(gitlabcmd.CONTAINER)),
        "portainer": ("managers", portainercmd.SERVICE_FACT, lambda v: "" if v else "no service portainer"),
        "swarm": ("managers", facts.docker_info(), swarm),
    }


def not_deployed(run, parts: list[str]) -> dict[str, str]:
    """part -> why it is not deployed ('' when it is), one probe per host. A host that cannot be
    asked leaves its parts unjudged (they run and report their own failure)."""
    probes = _probes()
    by_host: dict = {}
    for part in parts:
        group, fact, verdict = probes[part]
        spec = run.settings.group(group)[0]
        by_host.setdefault(spec, []).append((part, fact, verdict))
    out: dict[str, str] = {}

    def ask(h, asked) -> None:
        values = h.probe(*{f.name: f for _, f, _ in asked}.values())
        for part, fact, verdict in asked:
            why = verdict(values[fact.name])
            out[part] = f"{why} on {h.name}" if why else ""

    for spec, asked in by_host.items():
        run.one(spec, lambda h, asked=asked: ask(h, asked))
    return out


def _validate(settings, to, keep, offline) -> list[tuple[str, object, dict, str]]:
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"backup.all: {problem}")
    if keep is not None and int(keep) < 1:
        refuse("--keep must be 1 or more (the run's own folder is one of them)")
    steps = plan(settings, offline)
    for _, t, kwargs, skip in steps:  # every part's own refusals, before any host is touched
        spec = t.body.swarmbook
        if not skip and spec.validate:
            spec.validate(settings, to=to, **kwargs)
    return steps


HELP = {
    "to": "folder on this machine; each run makes a new dated folder in it (0700) with every backup "
          "and manifest.json",
    "keep": "after a run in which no part failed, remove all but the newest N dated folders of backup.all "
            "in --to (only folders named by a time stamp that hold a manifest.json)",
    "offline": "let swarm.backup stop a manager whose loss breaks quorum for the copy (a one-manager swarm: "
               "it cannot be managed for those seconds; services keep running)",
}


@task(name="all", help={**COMMON_HELP, **LOCK_HELP, **HELP}, klass=SwarmbookTask)
def all_(c, to=None, keep=None, offline=False, env_file=None, check=False, json=False, no_lock=False):
    """Back up the swarm, MySQL, Kong, Portainer and GitLab into one dated folder with a manifest; skip what is not deployed."""
    from swarmbook import config
    from swarmbook.engine import Run
    from swarmbook.report import Reporter

    check, json = modes(check, json)
    try:
        settings = config.load(env_file)
        keep = None if keep is None else validate.whole(keep, "--keep")
        steps = _validate(settings, to, keep, offline)
        reporter = Reporter(json_lines=json)
        for w in settings.warnings:
            reporter.note(w, level="warning")
        run = Run("backup.all", settings, reporter, check=check)
        with cluster_lock(run, list(settings.group("managers")), no_lock=no_lock):
            parts = run_all(run, steps, to=to, keep=keep)
    except Exception as exc:  # bad input, a refusal, or a bug: one line each
        raise exit_for(exc, json_lines=json, title="backup.all") from None
    reporter.recap("backup.all" + (" (check mode: nothing changed)" if check else ""), run.started)
    hosts = reporter.failed_hosts()
    if hosts:
        failed = [p["what"] for p in parts if p["status"] == "failed"]
        raise Exit(f"swarmbook: backup.all failed on {', '.join(hosts)} ({', '.join(failed) or 'probe'})", code=1)


def run_all(run, steps, *, to: str, keep: int | None) -> list[dict]:
    """The parts into a new dated folder, its manifest, then --keep; returns the manifest's parts."""
    import shutil

    from swarmbook.report import CHANGED

    absent = not_deployed(run, [p for p, _, _, skip in steps if not skip])
    folder = Path(to) if run.check else backupfile.make_dated(to, backupfile.stamp())
    parts = _stages(run, steps, absent, folder)
    if run.check:
        return parts
    backupfile.write(folder, backupfile.MANIFEST, backupfile.manifest_bytes(folder.name, parts))
    run.reporter.note(f"manifest: {folder / backupfile.MANIFEST}")
    failed = [p["what"] for p in parts if p["status"] == "failed"]
    if keep and failed:
        run.reporter.note(f"--keep: nothing removed ({', '.join(failed)} failed: older backups stay)", level="warning")
    elif keep:
        for old in backupfile.beyond_keep(to, keep):
            shutil.rmtree(old)
            run.emit("local", f"remove {old}", CHANGED, f"older than the newest {keep}")
    return parts


def _stages(run, steps, absent: dict[str, str], folder: Path) -> list[dict]:
    """Run each part's task into ``folder``; what each wrote, or why it was skipped or failed."""
    from swarmbook.engine import Run

    reporter, parts = run.reporter, []
    for part, t, kwargs, skip in steps:
        spec = t.body.swarmbook
        skip = skip or absent.get(part, "")
        if skip:
            reporter.note(f"skip {spec.title}: {skip}")
            parts.append({"what": part, "status": "skipped", "reason": skip})
            continue
        reporter.note(f"== {spec.title}")
        stage = Run(spec.title, run.settings, reporter, check=run.check, pool=run.pool, key=run.key,
                    clock=run.clock, sleep=run.sleep)
        before, t0 = backupfile.listing(folder), time.monotonic()
        execute(spec, stage, list(stage.settings.group(spec.group)), (), {"to": str(folder), **kwargs})
        entry = {"what": part, "host": ",".join(sorted({e.host for e in reporter.events if e.task == spec.title})),
                 "seconds": round(time.monotonic() - t0, 1), "status": "failed" if stage.failed() else "ok"}
        if stage.failed():
            entry["reason"] = next(e.reason for e in reporter.events if e.task == spec.title and e.status == "failed")
        if not run.check:
            entry["files"] = backupfile.new_files(folder, before)
        parts.append(entry)
    return parts


# --- backup.all as a cron job on this machine -------------------------------------------------
# It runs here, on the machine that runs swarmbook, not on a cluster host: this machine holds
# what backup.all needs (this checkout, hosts.env with the secrets, the SSH key, known_hosts), and
# the backups then live off the cluster, so losing the cluster does not lose them. Another
# machine ("a host of your choice") is one with a swarmbook checkout: run backup.cron there.

def _put_local(path: Path, text: str, mode: int) -> str:
    """Write ``text`` to ``path`` (mode) only when content or mode differ; '' when nothing did."""
    import os

    if path.is_file() and path.read_text() == text and path.stat().st_mode & 0o777 == mode:
        return ""
    why = "absent" if not path.exists() else "content or mode differ"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)  # whatever the umask took
    tmp.replace(path)
    return why


def _validate_cron(settings, schedule, to, keep, remove) -> None:
    import os

    if os.geteuid() != 0:
        refuse("backup.cron writes /etc/cron.d on this machine: run it as root")
    if not Path(croncmd.CRON_D).is_dir():
        refuse(f"{croncmd.CRON_D} does not exist on this machine (install cron)")
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"backup.cron: {problem}")
    if remove:
        return
    bad = croncmd.bad_schedule(schedule or "")
    if bad:
        refuse(bad)
    if keep is not None and int(keep) < 1:
        refuse("--keep must be 1 or more")


@task(name="cron", help={**COMMON_HELP, **HELP, "schedule": "cron schedule on this machine, e.g. '30 2 * * *' or @daily",
                         "remove": "remove the cron entry and its script (backups and log stay)"},
      klass=SwarmbookTask)
def cron(c, schedule=None, to=None, keep=None, offline=False, remove=False, env_file=None, check=False, json=False):
    """Install (or --remove) a cron job on this machine that runs backup.all --to DIR [--keep N] on a schedule."""
    import sys

    from swarmbook import config
    from swarmbook.report import CHANGED, OK, Event, Reporter

    check, json = modes(check, json)
    try:
        settings = config.load(env_file)
        keep = None if keep is None else validate.whole(keep, "--keep")
        _validate_cron(settings, schedule, to, keep, remove)
        reporter = Reporter(json_lines=json)
        started = time.monotonic()
        p = {k: Path(v) for k, v in croncmd.backup_paths(str(Path(to).resolve())).items()}

        def report(step: str, why: str) -> None:
            reporter.emit(Event("backup.cron", "local", step, CHANGED if why else OK, why, check))

        if remove:
            for k in ("entry", "script"):
                present = p[k].exists()
                if present and not check:
                    p[k].unlink()
                report(f"remove {p[k]}" if present else f"{p[k]} absent", "present" if present else "")
        else:
            hosts_env = str(config.env_path(env_file).resolve())
            argv = [sys.executable, "-m", "invoke", "backup.all", "--to", str(p["dir"].parent),
                    *(["--keep", str(keep)] if keep else []), *(["--offline"] if offline else [])]
            repo = str(Path(__file__).resolve().parent.parent)
            wanted = [(p["script"], croncmd.backup_script(repo, hosts_env, argv), 0o700),
                      (p["entry"], croncmd.cron_entry(croncmd.BACKUP_JOB, schedule, str(p["script"]), str(p["log"])),
                       0o644)]
            for path, text, mode in wanted:
                if check:
                    same = path.is_file() and path.read_text() == text and path.stat().st_mode & 0o777 == mode
                    report(str(path), "" if same else "would write")
                    continue
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                report(str(path), _put_local(path, text, mode))
            reporter.note("secrets come from hosts.env only under cron (its environment is empty): "
                          f"keep them in {hosts_env} (0600)")
            import shutil

            if not any(shutil.which(d, path="/usr/sbin:/usr/bin:/sbin:/bin") for d in ("cron", "crond")):
                reporter.note("no cron daemon on this machine: the entry will not run until one is installed",
                              level="warning")
    except Exception as exc:
        raise exit_for(exc, json_lines=json, title="backup.cron") from None
    reporter.recap("backup.cron" + (" (check mode: nothing changed)" if check else ""), started)


ns = Collection("backup", all_, cron)
