"""kong.backup / kong.restore: the builders (pg_dump inside kong-database, no password on any
line; one psql transaction), the dump parser, and the flow against a scripted pool: a backup
written only when whole and checked, a restore that stops Kong, replaces the database, starts
Kong and checks every service and route of the backup on the admin API, and does nothing when
the database already holds the backup."""

import base64
import gzip
import json
import subprocess

import pytest

import swarmbook.tasks.kong as TK
from swarmbook import backupfile, containercmd, kongcmd, taskdef
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import FakePool, make_run

PW = "s3cret-canary"
SQL = (b"--\n-- PostgreSQL database dump\n--\n\\restrict AbC\nDROP TABLE IF EXISTS public.routes;\n"
       b"COPY public.services (name, protocol, host, port, path) FROM stdin;\n"
       b"demo\thttp\tdemo_demo\t9501\t\\N\nshop\thttps\tshop\t443\t/v1\n\\.\n\n"
       b"COPY public.routes (name, service, paths) FROM stdin;\ndemo\tdemo\t[\"/demo\"]\n\\N\tshop\t[\"/s\"]\n\\.\n\n"
       b"--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict AbC\n")
ENV = f"MANAGERS=h1\nKONG=h1\nKONG_PG_PASSWORD={PW}\n"


def fetched(data: bytes) -> str:
    """What backupfile.fetch_cmd prints on the host for ``data``."""
    return f"{backupfile.sha256(data)}\n{base64.b64encode(data).decode()}\n"


def listed(running: dict[str, bool]) -> str:
    return json.dumps([{"Id": n, "Names": [f"/{n}"], "State": "running" if up else "exited", "Status": "",
                        "Labels": {}} for n, up in running.items()])


def test_dump_and_restore_run_inside_the_database_container_without_a_password():
    dump = kongcmd.dump_cmd()
    assert "docker exec kong-database pg_dump -U kong -d kong --clean --if-exists --no-owner --no-privileges" in dump
    assert "| gzip -c -n" in dump and "sha256sum" in dump and "base64 -w0" in dump
    assert kongcmd.restore_cmd() == ("docker exec -i kong-database psql -X -q -v ON_ERROR_STOP=1 --single-transaction "
                                     "-o /dev/null -U kong -d kong")
    assert kongcmd.container_cmd("stop") == "docker stop kong"


def test_fetch_cmd_brings_the_bytes_with_their_checksum_and_keeps_the_producers_failure():
    """Run the host side for real: what it prints is received whole; a failing producer fails it."""
    out = subprocess.run(["sh", "-c", backupfile.fetch_cmd("printf 'a\\nb\\0c'")], capture_output=True, text=True)
    assert out.returncode == 0 and backupfile.received(out.stdout) == (b"a\nb\0c", "")
    assert subprocess.run(["sh", "-c", backupfile.fetch_cmd("false")], capture_output=True).returncode != 0
    data, problem = backupfile.received(out.stdout.replace(out.stdout[:4], "0000", 1))
    assert "transfer corrupted" in problem


def test_dump_parser_names_rows_and_knows_a_whole_dump():
    assert kongcmd.dump_names(SQL, "services") == ["demo", "shop"]
    assert kongcmd.dump_names(SQL, "routes") == ["demo"]  # an unnamed route (\N) has no name to check
    assert kongcmd.dump_names(SQL, "plugins") == []
    assert kongcmd.dump_problem(SQL) == ""
    assert "dump complete" in kongcmd.dump_problem(SQL[:-80])
    # the per-run \restrict key is not part of what the database holds
    assert kongcmd.dump_body(SQL) == kongcmd.dump_body(SQL.replace(b"AbC", b"XyZ"))
    assert kongcmd.dump_body(SQL) != kongcmd.dump_body(SQL.replace(b"9501", b"9502"))


def _pool(now: bytes, kong_up: bool = True, admin: dict | None = None):
    admin = admin or {}
    facts = {containercmd.states_fact([kongcmd.DB, kongcmd.KONG]): (listed({"kong-database": True, "kong": kong_up}), 0)}
    base = kongcmd.admin_url("127.0.0.1")
    for n in ("demo", "shop"):
        facts[kongcmd.admin_get_fact(f"services/{n}", f"{base.rstrip('/')}/services/{n}")] = (
            f'{{"name": "{n}"}}\n{admin.get(n, 200)}', 0)
    facts[kongcmd.admin_get_fact("routes/demo", f"{base.rstrip('/')}/routes/demo")] = ('{"name": "demo"}\n200', 0)
    return FakePool(facts, {
        r"pg_dump": Result(fetched(gzip.compress(now)), "", 0),
        r"^docker (stop|start) kong$": Result("kong\n", "", 0),
        r"^docker exec -i kong-database psql": Result("", "", 0),
        r"^curl -fsS": Result("", "", 0),
    })


def _run(pool, task, **kw):
    run, out = make_run(pool, ENV, task=f"kong.{task}")
    taskdef.execute(getattr(TK, task).body.swarmbook, run, list(run.settings.group("kong")), (), kw)
    return run, out.getvalue()


def test_backup_writes_a_checked_file_and_restore_sends_it_back_with_kong_stopped(tmp_path):
    pool = _pool(SQL)
    run, out = _run(pool, "backup", to=str(tmp_path))
    assert run.failed() == [] and "2 services, 1 routes" in out, out
    (dump,) = tmp_path.glob("kong-h1-*.sql.gz")
    assert gzip.decompress(backupfile.read_checked(str(dump), "t")) == SQL
    assert pool.changes() == [kongcmd.dump_cmd()] and all(PW not in c for c in pool.changes())

    changed = _pool(SQL.replace(b"9501", b"9502"))  # someone changed a service since
    run, out = _run(changed, "restore", file=str(dump), yes=True)
    assert run.failed() == [] and "verified: 2 services and 1 routes of the backup answer" in out, out
    cmds = [c for c in changed.changes() if not c.startswith("curl")]
    assert cmds == [kongcmd.dump_cmd(), "docker stop kong", kongcmd.restore_cmd(), "docker start kong"]
    (sent,) = [stdin for c, stdin in changed.sent if c == kongcmd.restore_cmd()]
    assert sent == SQL


def test_restore_of_what_is_there_changes_nothing(tmp_path):
    path, _ = backupfile.write(tmp_path, "kong-h1-x.sql.gz", gzip.compress(SQL))
    pool = _pool(SQL.replace(b"AbC", b"NewKey"))  # same rows, another dump run
    run, out = _run(pool, "restore", file=str(path), yes=True)
    assert run.failed() == [] and "already holds kong-h1-x.sql.gz" in out and pool.changes() == [kongcmd.dump_cmd()]


def test_restore_starts_kong_again_when_the_restore_fails_and_names_what_is_missing(tmp_path):
    path, _ = backupfile.write(tmp_path, "kong-h1-x.sql.gz", gzip.compress(SQL))
    pool = _pool(b"-- other\n" + SQL)
    pool.responses[r"^docker exec -i kong-database psql"] = Result("", "ERROR: relation exists", 3)
    run, out = _run(pool, "restore", file=str(path), yes=True)
    assert run.failed() == ["h1"] and pool.changes()[-1] == "docker start kong", pool.changes()
    pool = _pool(b"-- other\n" + SQL, admin={"shop": 404})
    run, out = _run(pool, "restore", file=str(path), yes=True)
    assert run.failed() == ["h1"] and "does not know services/shop" in out, out


def test_a_dump_cut_short_is_not_written_and_a_stopped_database_is_named(tmp_path):
    run, out = _run(_pool(SQL[:-80]), "backup", to=str(tmp_path))
    assert run.failed() == ["h1"] and "pg_dump failed" in out and list(tmp_path.iterdir()) == []
    pool = FakePool({containercmd.states_fact([kongcmd.DB, kongcmd.KONG]): (listed({"kong": True}), 0)}, {})
    run, out = _run(pool, "backup", to=str(tmp_path))
    assert run.failed() == ["h1"] and "no running container kong-database" in out and pool.changes() == []


def test_restore_refuses_a_corrupted_unconfirmed_or_foreign_file_before_any_host(tmp_path):
    path, _ = backupfile.write(tmp_path, "kong-h1-x.sql.gz", gzip.compress(SQL))
    settings = make_run(FakePool({}, {}), ENV)[0].settings
    with pytest.raises(ConfigError, match="rerun with --yes"):
        TK._validate_restore(settings, file=str(path))
    other, _ = backupfile.write(tmp_path, "mysql-h1-x.sql.gz", gzip.compress(b"-- MariaDB dump\n-- Dump completed\n"))
    with pytest.raises(ConfigError, match="not a whole dump"):
        TK._validate_restore(settings, file=str(other), yes=True)
    path.write_bytes(gzip.compress(SQL + b"-- tampered\n"))
    with pytest.raises(ConfigError, match="is corrupted"):
        TK._validate_restore(settings, file=str(path), yes=True)
    with pytest.raises(ConfigError, match="not a folder"):
        TK._validate_backup(settings, to=str(tmp_path / "nope"))
