"""mysql.backup / mysql.restore: the builders (password on stdin, never argv; system schemas
left out; a dump that did not finish refused) and the flow against a scripted pool."""

import base64
import gzip
import json
import subprocess

import pytest

import swarmbook.tasks.mysql as TM
from swarmbook import backupfile, containercmd, mysqlcmd, taskdef
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import FakePool, make_run

PW = "s3cret-canary"
SQL = (b"-- MariaDB dump\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\n"
       b"USE `shop`;\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1),(2);\n"
       b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `crm`;\n-- Dump completed on 2026-12-02  6:00:00\n")
RUNNING = json.dumps({"Id": "c1", "State": {"Running": True, "Status": "running"}, "Config": {}, "HostConfig": {}})


def test_password_only_on_stdin_and_system_schemas_left_out():
    for cmd in (mysqlcmd.dump_cmd(), mysqlcmd.restore_cmd()):
        assert "IFS= read -r MYSQL_PWD" in cmd and PW not in cmd and "-p" not in cmd.split()
    dump = mysqlcmd.dump_cmd()
    assert "--single-transaction" in dump and "--add-drop-database" in dump and dump.endswith("| gzip -c | base64 -w0")
    for schema in mysqlcmd.SYSTEM_SCHEMAS:
        assert f"'\"'\"'{schema}'\"'\"'" in dump  # quoted inside the sh -c script


def test_the_restore_script_reads_the_password_line_then_hands_the_rest_to_mysql():
    """Run the container-side script with a fake mysql: it must get the password in its
    environment (not argv) and exactly the SQL on stdin."""
    script = mysqlcmd.restore_cmd().split("sh -c ", 1)[1]
    import shlex
    (inner,) = shlex.split(script)
    fake = 'mysql() { printf "pwd=%s args=%s\\n" "$MYSQL_PWD" "$*"; cat; }; '
    out = subprocess.run(["sh", "-c", fake + inner.replace("exec mysql", "mysql")],
                         input=f"{PW} with space\\\n".encode() + SQL, capture_output=True).stdout
    first, rest = out.split(b"\n", 1)
    assert first == f"pwd={PW} with space\\ args=-uroot -h127.0.0.1".encode()
    assert rest == SQL


def test_a_dump_is_whole_only_with_mysqldumps_last_line():
    assert mysqlcmd.dump_problem(SQL) == ""
    assert "Dump completed" in mysqlcmd.dump_problem(SQL[:-40])
    assert mysqlcmd.dump_databases(SQL) == ["shop", "crm"]


def _pool(dump_out: str):
    return FakePool({containercmd.state_fact("mysql"): (RUNNING, 0)},
                    {r"mysqldump": Result(dump_out, "", 0),
                     r"^docker exec -i mysql sh -c 'IFS= read -r MYSQL_PWD; export MYSQL_PWD; exec mysql": Result("", "", 0),
                     r"SELECT schema_name": Result("shop\ncrm\n", "", 0)})


def _run(pool, task, **kw):
    run, out = make_run(pool, f"MANAGERS=h1\nMYSQL_ROOT_PASSWORD={PW}\n", task=f"mysql.{task}")
    taskdef.execute(getattr(TM, task).body.swarmbook, run, list(run.settings.group("managers")), (), kw)
    return run, out.getvalue()


def test_backup_writes_a_checked_file_and_restore_sends_it_back(tmp_path):
    pool = _pool(base64.b64encode(gzip.compress(SQL)).decode())
    run, out = _run(pool, "backup", to=str(tmp_path))
    assert run.failed() == [] and "2 databases: shop, crm" in out and PW not in out, out
    (dump,) = tmp_path.glob("mysql-h1-*.sql.gz")
    assert gzip.decompress(backupfile.read_checked(str(dump), "t")) == SQL
    assert [stdin for c, stdin in pool.sent if "mysqldump" in c] == [PW + "\n"]

    run, out = _run(pool, "restore", file=str(dump), yes=True)
    assert run.failed() == [] and "verified: 2 databases present" in out, out
    (sent,) = [stdin for c, stdin in pool.sent if "exec mysql -uroot -h127.0.0.1'" in c]
    assert sent == f"{PW}\n".encode() + SQL


def test_a_dump_cut_short_is_not_written(tmp_path):
    run, out = _run(_pool(base64.b64encode(gzip.compress(SQL[:-40])).decode()), "backup", to=str(tmp_path))
    assert run.failed() == ["h1"] and "mysqldump failed" in out and list(tmp_path.iterdir()) == []


def test_restore_refuses_a_corrupted_or_unconfirmed_backup_before_any_host(tmp_path):
    path, _ = backupfile.write(tmp_path, "mysql-h1-x.sql.gz", gzip.compress(SQL))
    settings = make_run(FakePool({}, {}), f"MANAGERS=h1\nMYSQL_ROOT_PASSWORD={PW}\n")[0].settings
    with pytest.raises(ConfigError, match="rerun with --yes"):
        TM._validate_restore(settings, file=str(path))
    path.write_bytes(gzip.compress(SQL + b"-- tampered\n"))
    with pytest.raises(ConfigError, match="is corrupted"):
        TM._validate_restore(settings, file=str(path), yes=True)
    with pytest.raises(ConfigError, match="not a folder"):
        TM._validate_backup(settings, to=str(tmp_path / "nope"))
