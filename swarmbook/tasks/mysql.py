"""MySQL on the shared network (the runbook's `docker run --name mysql --network default-network`).

Runs on the first manager (one database, not one per node). Assumes Docker and the
attachable shared network (net.create); other containers on it reach it as `mysql`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse, require

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import containercmd, containers, facts, mysqlcmd, backupfile
else:
    containercmd = lazy("swarmbook.containercmd")
    containers = lazy("swarmbook.containers")
    facts = lazy("swarmbook.facts")
    mysqlcmd = lazy("swarmbook.mysqlcmd")
    backupfile = lazy("swarmbook.backupfile")


def _validate(settings, timeout=180):
    if not settings["MYSQL_ROOT_PASSWORD"]:
        refuse(f"MYSQL_ROOT_PASSWORD is empty (set it in the environment or {settings.source})")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="managers", validate=_validate, help={
    "timeout": "seconds to wait until MySQL answers a query (default 180)",
})
def up(run: Run, specs: list[HostSpec], timeout=180):
    """Run MySQL on the shared network, data in MYSQL_DATA, root password from MYSQL_ROOT_PASSWORD; query it."""
    s = run.settings
    c = mysqlcmd.container(s)
    pw = s["MYSQL_ROOT_PASSWORD"]

    def body(h: Host) -> None:
        f = h.probe(facts.command_exists("docker"), containercmd.network_fact(c.network), containercmd.state_fact(mysqlcmd.NAME),
                    facts.file_state(mysqlcmd.ENV_FILE, "env"))
        if not f["has:docker"]:
            h.needs("mysql", "docker is not installed (run docker.install first)")
        if not f[f"network:{c.network}"]:
            h.needs("mysql", f"network {c.network} is missing (run net.create first)")
        containers.ensure(h, c, f[f"container:{mysqlcmd.NAME}"], secrets={"MYSQL_ROOT_PASSWORD": pw.reveal()},
                          env_state=f["env"])
        if h.check:
            return
        result: dict = {}

        def answers() -> bool:
            res = h.try_run(mysqlcmd.VERSION_QUERY, stdin=pw.reveal() + "\n")
            result["res"] = res
            return res.rc == 0

        try:
            h.wait("MySQL to answer", answers, timeout=int(timeout), interval=2)
        except StepFailed:
            res = result.get("res")
            raise StepFailed(f"MySQL does not answer a query as root after {timeout}s: "
                             f"{(res.stderr.strip().splitlines() or ['?'])[-1] if res else '?'} "
                             "(a data folder made with another root password keeps that password)") from None
        h.ok("MySQL answers", f"SELECT VERSION() = {result['res'].stdout.strip()}")

    run.one(specs[0], body)


def _validate_backup(settings, to=None):
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"mysql.backup: {problem}")
    require(settings, "MYSQL_ROOT_PASSWORD")


def _running(h: Host) -> None:
    state = h.probe(containercmd.state_fact(mysqlcmd.NAME))[f"container:{mysqlcmd.NAME}"]
    if not state or not state["running"]:
        h.fail("mysql", f"no running container {mysqlcmd.NAME} on {h.name} (mysql.up)")


@cluster_task(group="managers", validate=_validate_backup, help={
    "to": "folder on this machine for mysql-HOST-TIME.sql.gz and its .sha256 (never overwritten)",
})
def backup(run: Run, specs: list[HostSpec], to=None):
    """Dump every user database (one consistent snapshot, --single-transaction) to --to FOLDER, gzip + sha256."""
    import base64
    import gzip

    pw = run.settings["MYSQL_ROOT_PASSWORD"]

    def body(h: Host) -> None:
        _running(h)
        if h.check:
            h.ok("backup", f"would write {Path(to) / backupfile.name('mysql', h.name, 'TIME', 'sql.gz')}")
            return
        out = h.run(mysqlcmd.dump_cmd(), stdin=pw.reveal() + "\n", step="mysqldump", timeout=3600).stdout
        try:
            data = base64.b64decode(out.strip(), validate=True)
            sql = gzip.decompress(data)
        except (ValueError, OSError):
            h.fail("backup", "the dump did not arrive whole (not base64 gzip); nothing written")
        problem = mysqlcmd.dump_problem(sql)
        if problem:
            h.fail("backup", f"mysqldump failed: {problem}; nothing written")
        name = backupfile.name("mysql", h.name, backupfile.stamp(), "sql.gz")
        try:
            path, digest = backupfile.write(to, name, data)
        except FileExistsError:
            h.fail("backup", f"{Path(to) / name} already exists; backups are never overwritten (retry in a second)")
        dbs = mysqlcmd.dump_databases(sql)
        # the host is unchanged: a backup is a read, so it reports ok (with where it went)
        h.ok("backup", f"{path} ({len(data)} bytes, {len(dbs)} databases: {', '.join(dbs) or 'none'}; "
                       f"sha256 {digest[:12]}...)")

    run.one(specs[0], body)


def _read_dump(file: str | None) -> tuple[bytes, list[str]]:
    sql = backupfile.read_sql(file, "mysql.restore", mysqlcmd.dump_problem)
    return sql, mysqlcmd.dump_databases(sql)


def _validate_restore(settings, file=None, yes=False):
    _read_dump(file)
    require(settings, "MYSQL_ROOT_PASSWORD")
    if not yes:
        refuse("mysql.restore drops and re-creates every database in the backup: rerun with --yes")


@cluster_task(group="managers", validate=_validate_restore, positional=["file"], help={
    "file": "a mysql.backup file (its .sha256 must be beside it)",
    "yes": "confirm: each database in the backup is dropped and re-created from it",
})
def restore(run: Run, specs: list[HostSpec], file=None, yes=False):
    """Restore the databases of a checked mysql.backup file (each dropped and re-created), then check they exist."""
    sql, dbs = _read_dump(file)
    pw = run.settings["MYSQL_ROOT_PASSWORD"]

    def body(h: Host) -> None:
        _running(h)
        h.change("restore databases", mysqlcmd.restore_cmd(), stdin=(pw.reveal() + "\n").encode() + sql,
                 reason=f"{Path(file).name}: {', '.join(dbs) or 'no user databases'}", timeout=3600)
        if h.check:
            return
        have = set(h.run(mysqlcmd.databases_cmd(), stdin=pw.reveal() + "\n", step="verify").stdout.split())
        missing = [d for d in dbs if d not in have]
        if missing:
            raise StepFailed(f"verify: after the restore these databases are missing: {', '.join(missing)}")
        h.ok("verified", f"{len(dbs)} databases present")

    run.one(specs[0], body)


ns = Collection("mysql", up, backup, restore)
