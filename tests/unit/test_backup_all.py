"""backup.all: the parts' own tasks run into one new dated folder, parts not deployed skipped and
said so, a manifest naming every file with its size and sha256, --keep removing only older
folders of its own; refusals before any host; backup.cron's files on this machine."""

import base64
import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

import swarmbook.tasks.backup as TB
from swarmbook import backupfile, containercmd, croncmd, facts, kongcmd, mysqlcmd, portainercmd
from swarmbook.config import parse
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import ABSENT, FakePool, make_run

PW = "s3cret-canary"
ENV = f"MANAGERS=h1\nKONG=h2\nMYSQL_ROOT_PASSWORD={PW}\n"
RUNNING = json.dumps({"Id": "c1", "State": {"Running": True, "Status": "running"}, "Config": {}, "HostConfig": {}})
MYSQL_SQL = b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`;\n-- Dump completed on 2026-12-02\n"
KONG_SQL = (b"COPY public.services (name, host) FROM stdin;\ndemo\tx\n\\.\n"
            b"-- PostgreSQL database dump complete\n")
INACTIVE = json.dumps({"Swarm": {"LocalNodeState": "inactive", "ControlAvailable": False}})


def fetched(data: bytes) -> str:
    return f"{backupfile.sha256(data)}\n{base64.b64encode(data).decode()}\n"


def listed(names):
    return json.dumps([{"Id": n, "Names": [f"/{n}"], "State": "running", "Status": "", "Labels": {}} for n in names])


def pool(kong_db: bool = True, dump=MYSQL_SQL):
    return FakePool(
        hosts={"h1": {containercmd.state_fact(mysqlcmd.NAME): (RUNNING, 0), facts.docker_info(): (INACTIVE, 0),
                      portainercmd.SERVICE_FACT: ABSENT},
               "h2": {containercmd.state_fact(kongcmd.DB): (RUNNING, 0) if kong_db else ABSENT,
                      containercmd.states_fact([kongcmd.DB, kongcmd.KONG]): (listed([kongcmd.DB, kongcmd.KONG]), 0)}},
        run={r"mysqldump": Result(base64.b64encode(gzip.compress(dump)).decode(), "", 0),
             r"pg_dump": Result(fetched(gzip.compress(KONG_SQL)), "", 0)})


def run_all(p, to, keep=None, env=ENV):
    run, out = make_run(p, env, task="backup.all")
    steps = TB._validate(run.settings, str(to), keep, False)
    return TB.run_all(run, steps, to=str(to), keep=keep), run, out.getvalue()


def test_parts_run_into_one_dated_folder_with_a_manifest_and_the_rest_is_skipped(tmp_path):
    p = pool()
    parts, run, out = run_all(p, tmp_path)
    assert run.reporter.failed_hosts() == [], out
    (folder,) = [d for d in tmp_path.iterdir() if d.is_dir()]
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and backupfile.ours(folder)
    manifest = json.loads(backupfile.read_checked(str(folder / "manifest.json"), "t"))
    by = {m["what"]: m for m in manifest["parts"]}
    assert [m["what"] for m in manifest["parts"]] == ["mysql", "kong", "gitlab", "portainer", "swarm"]
    assert by["mysql"]["status"] == "ok" and by["mysql"]["host"] == "h1"
    assert by["kong"]["status"] == "ok" and by["kong"]["host"] == "h2"
    assert by["gitlab"] == {"what": "gitlab", "status": "skipped", "reason": "GITLAB is empty"}
    assert by["portainer"]["reason"] == "no service portainer on h1"
    assert by["swarm"]["reason"].startswith("not a manager of an active swarm (inactive) on h1")
    for part, name in (("mysql", "mysql-h1-"), ("kong", "kong-h2-")):
        (f,) = by[part]["files"]
        assert f["file"].startswith(name) and f["size"] == (folder / f["file"]).stat().st_size
        assert f["sha256"] == backupfile.sha256((folder / f["file"]).read_bytes())
        assert oct((folder / f["file"]).stat().st_mode & 0o777) == "0o600"  # a dump holds password hashes
    assert "skip portainer.backup: no service portainer on h1" in out and PW not in out


def test_a_container_that_is_gone_skips_its_part_and_a_failed_part_keeps_older_backups(tmp_path):
    for stamp in ("20261130T020000Z", "20261201T020000Z"):
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / "manifest.json").write_text("{}")
    (tmp_path / "20261129T020000Z").mkdir()  # a dated folder without a manifest: not ours
    (tmp_path / "photos").mkdir()
    parts, run, out = run_all(pool(kong_db=False, dump=MYSQL_SQL[:-30]), tmp_path, keep=1)
    by = {m["what"]: m for m in parts}
    assert by["kong"]["reason"] == "no container kong-database on h2"
    assert by["mysql"]["status"] == "failed" and "mysqldump failed" in by["mysql"]["reason"]
    assert by["mysql"]["files"] == []
    assert "--keep: nothing removed (mysql failed" in out
    assert {p.name for p in tmp_path.iterdir()} >= {"20261130T020000Z", "20261201T020000Z"}


def test_keep_removes_only_older_folders_of_its_own(tmp_path):
    for stamp in ("20261130T020000Z", "20261201T020000Z"):
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / "manifest.json").write_text("{}")
    (tmp_path / "20261129T020000Z").mkdir()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "manifest.json").write_text("{}")
    parts, run, out = run_all(pool(), tmp_path, keep=2)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert "20261130T020000Z" not in left and "20261201T020000Z" in left and len(left) == 4, left
    assert "20261129T020000Z" in left and "photos" in left
    assert [e.step for e in run.reporter.events if e.status == "changed"] == [f"remove {tmp_path / '20261130T020000Z'}"]


def test_refusals_before_any_host(tmp_path):
    settings = parse(ENV, environ={})
    with pytest.raises(ConfigError, match="backup.all: --to .* is not a folder"):
        TB._validate(settings, str(tmp_path / "nope"), None, False)
    with pytest.raises(ConfigError, match="--keep must be 1 or more"):
        TB._validate(settings, str(tmp_path), 0, False)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(ConfigError, match="is not writable"):
            TB._validate(settings, str(ro), None, False)
    # a part whose settings are missing is skipped, not refused
    assert [s[3] for s in TB.plan(parse("MANAGERS=h1\n", environ={}))][:3] == [
        "MYSQL_ROOT_PASSWORD not set", "KONG is empty", "GITLAB is empty"]


def test_the_cron_script_runs_backup_all_from_this_checkout_without_a_secret(tmp_path):
    argv = ["/usr/bin/python3", "-m", "invoke", "backup.all", "--to", "/b k", "--keep", "7"]
    script = croncmd.backup_script("/opt/swarm book", "/etc/sb/hosts.env", argv)
    assert "cd '/opt/swarm book'\n" in script and "export SWARMBOOK_ENV=/etc/sb/hosts.env\n" in script
    assert "/usr/bin/python3 -m invoke backup.all --to '/b k' --keep 7\n" in script
    # the script runs: with a fake python it is handed exactly that argv
    fake = tmp_path / "py"
    fake.write_text('#!/bin/sh\necho "env=$SWARMBOOK_ENV pwd=$(pwd) args=$*"\n')
    fake.chmod(0o755)
    out = subprocess.run(["sh", "-c", croncmd.backup_script(str(tmp_path), "/h.env", [str(fake), "-m", "x"])],
                         capture_output=True, text=True)
    assert out.returncode == 0 and f"env=/h.env pwd={tmp_path} args=-m x" in out.stdout, out
    p = croncmd.backup_paths("/backups/")
    assert p == {"dir": "/backups/.cron", "script": "/backups/.cron/backup-all.sh",
                 "log": "/backups/.cron/backup-all.log", "entry": "/etc/cron.d/swarmbook-backup-all"}


def test_local_files_are_written_only_when_they_differ(tmp_path):
    f = tmp_path / "s.sh"
    assert TB._put_local(f, "a\n", 0o700) == "absent"
    assert TB._put_local(f, "a\n", 0o700) == ""
    f.chmod(0o755)
    assert TB._put_local(f, "a\n", 0o700) == "content or mode differ" and oct(f.stat().st_mode & 0o777) == "0o700"
    assert sorted(Path(tmp_path).iterdir()) == [f]
