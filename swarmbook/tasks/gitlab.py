"""GitLab CE in Docker on the GITLAB hosts: run it, read the initial root password, set SMTP,
back it up (GitLab's gitlab-backup, plus the two config files it leaves out) and restore it.

Assumes Docker on the host (docker.install). GitLab takes port 22 only after sshd moved away
(sshd.move-port); gitlab.up probes who listens on 22 and refuses while it is sshd.
"""

from __future__ import annotations

import json as jsonlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import host_task, refuse, require

if TYPE_CHECKING:
    from swarmbook.engine import Host

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import containercmd, containers, ops, facts, gitlabcmd, validate, backupfile
else:
    containercmd = lazy("swarmbook.containercmd")
    containers = lazy("swarmbook.containers")
    ops = lazy("swarmbook.ops")
    facts = lazy("swarmbook.facts")
    gitlabcmd = lazy("swarmbook.gitlabcmd")
    validate = lazy("swarmbook.validate")
    backupfile = lazy("swarmbook.backupfile")


def _ports(settings, ports=None) -> tuple[str, ...]:
    wanted = tuple(settings["GITLAB_PORTS"]) if ports is None else tuple(
        p.strip() for p in ports.split(",") if p.strip())
    for p in wanted:
        if gitlabcmd.bad_port(p):
            refuse(gitlabcmd.bad_port(p))
    return wanted


def _validate_up(settings, hostname=None, ports=None, timeout=None, **_):
    if hostname:
        validate.hostname(hostname, "--hostname")
    _ports(settings, ports)
    if timeout is not None and int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@host_task(group="gitlab", validate=_validate_up, help={
    "hostname": "GitLab's --hostname (default GITLAB_HOSTNAME, else the host's address)",
    "ports": "comma list of host:container ports (default GITLAB_PORTS: 443:443,80:80,22:22)",
    "timeout": "seconds to wait for GitLab to report healthy (default GITLAB_TIMEOUT)",
})
def up(h: Host, hostname=None, ports=None, timeout=None):
    """Run GitLab CE (volumes under GITLAB_HOME, restart always); wait until it is healthy."""
    s = h.settings
    wanted = _ports(s, ports)
    home = s["GITLAB_HOME"]
    c = gitlabcmd.container(image=s["GITLAB_IMAGE"], hostname=s.get("GITLAB_HOSTNAME", hostname) or h.name,
                    home=home, ports=wanted)
    ssh_port = gitlabcmd.host_port(wanted, 22)
    f = h.probe(facts.command_exists("docker"), containercmd.state_fact(gitlabcmd.CONTAINER),
                *([gitlabcmd.listeners_fact(ssh_port)] if ssh_port else []),
                gitlabcmd.dirs_fact(home))
    if not f["has:docker"]:
        h.needs("gitlab", "docker is not installed (run docker.install first)")
    if ssh_port and "sshd" in f[f"listen:{ssh_port}"]:
        h.needs("publish port 22", f"sshd still listens on {ssh_port}: run `inv sshd.move-port` first "
                                  f"(or publish GitLab's ssh elsewhere with --ports)")
    if f["dirs"]:
        h.ok(f"folders under {home}")
    else:
        h.change(f"folders under {home}", gitlabcmd.make_dirs_cmd(home))
    changed = containers.ensure(h, c, f[f"container:{gitlabcmd.CONTAINER}"])
    if h.check:
        return
    _wait_healthy(h, s.get("GITLAB_TIMEOUT", timeout), gitlabcmd.host_port(wanted, 80),
                  probed=None if changed else f[f"container:{gitlabcmd.CONTAINER}"])


def _wait_healthy(h: Host, timeout, http_port, probed: dict | None = None) -> None:
    """Wait for GitLab's HEALTHCHECK (or its /-/health page); ``probed``: the state just read
    from an unchanged container, which saves a second look when it already says healthy."""
    if probed and probed.get("health") == "healthy":
        h.ok("GitLab healthy", "already")
        return
    fact = containercmd.state_fact(gitlabcmd.CONTAINER)
    state: dict = {}

    def ready() -> bool:
        st = h.probe(fact)[fact.name] or {}
        state.update(st)
        if st.get("health"):  # the image has a HEALTHCHECK (GitLab's runs gitlab-healthcheck)
            return st["health"] == "healthy"
        return bool(http_port) and h.try_run(containercmd.http_ok_cmd(f"http://127.0.0.1:{http_port}/-/health")).rc == 0

    t0 = time.monotonic()
    try:
        h.wait("GitLab to be healthy", ready, timeout=int(timeout), interval=3)
    except StepFailed:
        raise StepFailed(f"GitLab not healthy after {timeout}s (state {state.get('status')}, "
                         f"health {state.get('health')}); see `docker logs gitlab`") from None
    h.ok("GitLab healthy", f"after {time.monotonic() - t0:.0f}s")


SHOWN = "config/.swarmbook-root-password-shown"


def _validate_password(settings, to=None, again=False):
    if to and Path(to).is_dir():
        refuse(f"--to {to} is a folder; name a file")


@host_task(group="gitlab", name="root-password", validate=_validate_password, help={
    "to": "write the password to this file on this machine (mode 0600) instead of printing it",
    "again": "print it even though it was shown before",
})
def root_password(h: Host, to=None, again=False):
    """Show GitLab's initial root password once, or write it to a 0600 file with --to."""
    shown = f"{h.settings['GITLAB_HOME']}/{SHOWN}"
    f = h.probe(containercmd.state_fact(gitlabcmd.CONTAINER), facts.file_state(shown, "shown"))
    if not (f[f"container:{gitlabcmd.CONTAINER}"] or {}).get("running"):
        h.needs("root password", "the gitlab container is not running (run gitlab.up first)")
    if not to and f["shown"] and not again:
        h.ok("root password", f"already shown ({f['shown']['content'].strip()}); use --to FILE or --again")
        return
    res = h.try_run(gitlabcmd.read_password_cmd())
    password = gitlabcmd.parse_root_password(res.stdout) if res.rc == 0 else ""
    if not password:
        h.fail("root password", f"{gitlabcmd.PASSWORD_FILE} is gone (GitLab deletes it 24 h after the first "
                                "reconfigure): reset it with `gitlab-rake \"gitlab:password:reset[root]\"`")
    h.run_.reporter.mask.add(password)
    if to:
        path = Path(to if len(h.run_.settings.group("gitlab")) < 2 else f"{to}.{h.name}")
        if path.exists() and path.read_text() == password + "\n":
            os.chmod(path, 0o600)
            h.ok(f"root password in {path}")
            return
        if h.check:
            h.change(f"root password to {path}", None)
            return
        write_private(path, password + "\n")
        h.change(f"root password to {path}", None, reason="mode 0600")
        return
    if h.check:
        h.change("show root password", None)
        return
    rep = h.run_.reporter
    with rep._lock:  # the one place a secret is printed on purpose: unmasked, not in the step lines
        line = {"event": "secret", "host": h.name, "user": "root", "password": password}
        rep.out.write(jsonlib.dumps(line) + "\n" if rep.json_lines else f"{h.name}: GitLab root password: {password}\n")
        rep.out.flush()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    h.change("show root password", ops.write_file_cmd(shown, mode="0600"), stdin=f"shown {stamp}\n",
             reason="printed once; next time use --to FILE or --again")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only before the first byte lands: a new
    file is created 0600 (O_CREAT|O_EXCL), an existing one is chmod'ed 0600 before it is emptied."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_WRONLY)
    try:
        os.fchmod(fd, 0o600)  # an existing file's old mode; a umask that took a bit from 0600
        os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _validate_smtp(settings, **_):
    require(settings, "GITLAB_SMTP_ADDRESS", "GITLAB_SMTP_USER", "GITLAB_SMTP_PASSWORD")


@host_task(group="gitlab", validate=_validate_smtp, help={})
def smtp(h: Host):
    """Set the runbook's SMTP block in gitlab.rb from hosts.env; reconfigure only on change."""
    s = h.settings
    path = f"{s['GITLAB_HOME']}/config/gitlab.rb"
    marker = gitlabcmd.applied_marker(path)
    f = h.probe(facts.file_state(path, "rb"), containercmd.state_fact(gitlabcmd.CONTAINER), facts.file_state(marker, "applied"))
    if f["rb"] is None:
        h.needs("gitlab.rb", f"{path} does not exist (run gitlab.up first)")
    wanted = gitlabcmd.with_settings(f["rb"]["content"], gitlabcmd.smtp_settings(s, s["GITLAB_SMTP_PASSWORD"].reveal()))
    changed = ops.put_file(h, path, wanted, mode="0600", state=f["rb"], secret=True,
                           step=f"SMTP settings in {path}")
    applied = (f["applied"] or {}).get("content", "").strip() == gitlabcmd.applied_hash(wanted)
    if not changed and applied:
        return
    if not (f[f"container:{gitlabcmd.CONTAINER}"] or {}).get("running"):
        h.fail("gitlab-ctl reconfigure", "the gitlab container is not running; start it with gitlab.up")
    h.change("gitlab-ctl reconfigure", gitlabcmd.reconfigure_cmd(marker, wanted), timeout=1800,
             reason="gitlab.rb changed" if changed else "gitlab.rb written earlier but not applied")


def _validate_backup(settings, to=None):
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"gitlab.backup: {problem}")


@host_task(group="gitlab", validate=_validate_backup, help={
    "to": "folder on this machine for gitlab-HOST-TIME.tar, .gitlab-secrets.json and .gitlab.rb (0600, "
          "each with its .sha256; never overwritten)",
})
def backup(h: Host, to=None):
    """Run GitLab's own gitlab-backup create and bring its tar here, with gitlab-secrets.json and gitlab.rb (not in it)."""
    f = h.probe(containercmd.state_fact(gitlabcmd.CONTAINER), gitlabcmd.files_fact())
    if not (f[f"container:{gitlabcmd.CONTAINER}"] or {}).get("running"):
        h.fail("gitlab", f"no running container {gitlabcmd.CONTAINER} on {h.name} (gitlab.up); nothing written")
    have = f["gitlab_files"]
    if not have[gitlabcmd.SECRETS_JSON]:
        h.fail("backup", f"{gitlabcmd.SECRETS_JSON} is missing in the container: a GitLab backup cannot be restored "
                         "without it (has GitLab been reconfigured?); nothing written")
    stamp = backupfile.stamp()
    wanted = [("tar", None), ("gitlab-secrets.json", gitlabcmd.SECRETS_JSON)] + (
        [("gitlab.rb", gitlabcmd.GITLAB_RB)] if have[gitlabcmd.GITLAB_RB] else [])
    if not have[gitlabcmd.GITLAB_RB]:  # GitLab's docs: configured only through GITLAB_OMNIBUS_CONFIG, there is none
        h.note(f"{gitlabcmd.GITLAB_RB} does not exist (all configuration in GITLAB_OMNIBUS_CONFIG?): not copied")
    if h.check:
        names = ", ".join(backupfile.name("gitlab", h.name, "TIME", ext) for ext, _ in wanted)
        h.ok("backup", f"would run gitlab-backup create and write {names}")
        return
    out = h.run(gitlabcmd.backup_create_cmd(), step="gitlab-backup create", timeout=6 * 3600).stdout
    backup_id = gitlabcmd.parse_backup_id(out)
    if not backup_id:
        last = (out.strip().splitlines() or ["?"])[-1][:200]
        h.fail("gitlab-backup create", f"did not say 'Backup ... is done.': {last}")
    got: dict[str, bytes] = {}
    for ext, path in wanted:
        path = path or gitlabcmd.backup_tar(backup_id)
        data, problem = backupfile.received(h.run(gitlabcmd.fetch_file_cmd(path), step=f"copy {path}", timeout=6 * 3600).stdout)
        if problem:
            h.fail(f"copy {path}", f"{problem}; nothing written")
        got[ext] = data
    problem = gitlabcmd.tar_problem(got["tar"])
    if problem:
        h.fail("backup", f"{gitlabcmd.backup_tar(backup_id)}: {problem}; nothing written")
    written = []
    for ext, data in got.items():
        name = backupfile.name("gitlab", h.name, stamp, ext)
        try:
            backupfile.write(to, name, data)
        except FileExistsError:
            h.fail("backup", f"{Path(to) / name} already exists; backups are never overwritten (retry in a second)")
        written.append(f"{name} ({len(data)} bytes)")
    # a read of GitLab's data: ok; GitLab's own copy stays on the host (its backup_keep_time prunes it)
    h.ok("backup", f"GitLab backup {backup_id} in {to}: {', '.join(written)}; 0600, sha256 beside each; "
                   f"GitLab's copy stays in {gitlabcmd.BACKUP_DIR} in the container")


def _restore_files(file: str | None) -> dict[str, bytes]:
    """The checked files of one gitlab.backup: its tar, gitlab-secrets.json and, when it was
    copied, gitlab.rb; one line (before any host) when one is missing, corrupted or not GitLab's."""
    if not file or not file.endswith(".tar"):
        refuse("gitlab.restore needs the .tar of a gitlab.backup (its .gitlab-secrets.json beside it)")
    tar = backupfile.read_checked(file, "gitlab.restore")
    problem = gitlabcmd.tar_problem(tar)
    if problem:
        refuse(f"{file} is not a GitLab backup: {problem}; nothing was touched")
    base = file[: -len(".tar")]
    if not Path(f"{base}.gitlab-secrets.json").is_file():
        refuse(f"{base}.gitlab-secrets.json not found: without it GitLab cannot read its encrypted data "
               "after a restore; nothing was touched")
    files = {"tar": tar, "gitlab-secrets.json": backupfile.read_checked(f"{base}.gitlab-secrets.json", "gitlab.restore")}
    if Path(f"{base}.gitlab.rb").is_file():
        files["gitlab.rb"] = backupfile.read_checked(f"{base}.gitlab.rb", "gitlab.restore")
    return files


def _validate_restore(settings, file=None, yes=False, timeout=None):
    _restore_files(file)
    if not yes:
        refuse("gitlab.restore replaces GitLab's data, gitlab-secrets.json and gitlab.rb and restarts GitLab: "
               "rerun with --yes")
    if timeout is not None and int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@host_task(group="gitlab", validate=_validate_restore, positional=["file"], help={
    "file": "the .tar of a gitlab.backup (its .gitlab-secrets.json, .gitlab.rb and .sha256 files beside it)",
    "yes": "confirm: GitLab's data and its two config files are replaced, GitLab restarts",
    "timeout": "seconds to wait for GitLab to report healthy after the restart (default GITLAB_TIMEOUT)",
})
def restore(h: Host, file=None, yes=False, timeout=None):
    """Restore a gitlab.backup as GitLab's docs say: secrets and gitlab.rb back, puma/sidekiq stopped, gitlab-backup restore, restart."""
    files = _restore_files(file)
    backup_id = Path(file).stem  # GitLab restores BACKUP_DIR/<ID>_gitlab_backup.tar; any ID names it
    if not (h.probe(containercmd.state_fact(gitlabcmd.CONTAINER))[f"container:{gitlabcmd.CONTAINER}"] or {}).get("running"):
        h.fail("gitlab", f"no running container {gitlabcmd.CONTAINER} on {h.name} (gitlab.up; same GitLab version as the backup)")
    for name, path in (("gitlab-secrets.json", gitlabcmd.SECRETS_JSON), ("gitlab.rb", gitlabcmd.GITLAB_RB)):
        if name in files:
            h.change(f"put {path}", gitlabcmd.put_cmd(path), stdin=files[name], reason=f"from {Path(file).name}")
    h.change("copy the backup into GitLab", gitlabcmd.put_cmd(gitlabcmd.backup_tar(backup_id), owner="git"), stdin=files["tar"],
             reason=gitlabcmd.backup_tar(backup_id), timeout=6 * 3600)
    for service in ("puma", "sidekiq"):  # the processes that use the database
        h.change(f"stop {service}", gitlabcmd.ctl_cmd("stop", service))
    try:
        h.change("gitlab-backup restore", gitlabcmd.backup_restore_cmd(backup_id), timeout=6 * 3600)
    finally:  # whatever happened, GitLab starts again (and reconfigures with the restored gitlab.rb)
        h.change("restart gitlab", gitlabcmd.restart_cmd(), timeout=600)
    if h.check:
        return
    _wait_healthy(h, h.settings.get("GITLAB_TIMEOUT", timeout), gitlabcmd.host_port(tuple(h.settings["GITLAB_PORTS"]), 80))
    fact = gitlabcmd.file_sum_fact(gitlabcmd.SECRETS_JSON)
    if h.probe(fact)[fact.name] != backupfile.sha256(files["gitlab-secrets.json"]):
        raise StepFailed(f"verify: {gitlabcmd.SECRETS_JSON} differs from the backup's after the restart")
    h.ok("verified", f"GitLab healthy, {gitlabcmd.SECRETS_JSON} is the backup's")


ns = Collection("gitlab", up, root_password, smtp, backup, restore)
