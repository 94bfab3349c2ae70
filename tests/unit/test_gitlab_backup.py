"""gitlab.backup: GitLab's own `gitlab-backup create` in the container, its tar and the two files
GitLab's docs say it leaves out (gitlab-secrets.json, gitlab.rb) brought here checked, all 0600
with a .sha256 each; nothing written when any of them is missing or not what it should be."""

import io
import shlex
import subprocess
from pathlib import Path
import json
import os
import tarfile

import pytest

import swarmbook.tasks.gitlab as TG
from swarmbook import backupfile, containercmd, gitlabcmd, taskdef
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import FakePool, make_run, tar_bytes

RUNNING = json.dumps({"Id": "c1", "State": {"Running": True, "Status": "running"}, "Config": {}, "HostConfig": {}})
BID = "1796210867_2026_12_02_17.5.1"
OUT = (f"2026-12-02 11:27:47 UTC -- Creating backup archive: {BID}_gitlab_backup.tar ... done\n"
       "2026-12-02 11:27:47 UTC -- Warning: Your gitlab.rb and gitlab-secrets.json files contain sensitive data\n"
       f"2026-12-02 11:27:47 UTC -- Backup {BID} is done.\n")
TAR = tar_bytes({"backup_information.yml": b":gitlab_version: 17.5.1\n", "db/database.sql.gz": b"x",
                 "repositories/demo.bundle": b"git"})
SECRETS = b'{"gitlab_rails": {"db_key_base": "s3cret-canary"}}'
RB = b"external_url 'https://gitlab.example'\n"


def fetched(data: bytes) -> str:
    import base64
    return f"{backupfile.sha256(data)}\n{base64.b64encode(data).decode()}\n"


def _pool(files: str = f"{gitlabcmd.SECRETS_JSON}\n{gitlabcmd.GITLAB_RB}\n", tar: bytes = TAR, out: str = OUT):
    return FakePool({containercmd.state_fact("gitlab"): (RUNNING, 0), gitlabcmd.files_fact(): (files, 0)}, {
        r"^docker exec gitlab gitlab-backup create$": Result(out, "", 0),
        rf"docker exec gitlab cat /var/opt/gitlab/backups/{BID}_gitlab_backup\.tar": Result(fetched(tar), "", 0),
        r"docker exec gitlab cat /etc/gitlab/gitlab-secrets\.json": Result(fetched(SECRETS), "", 0),
        r"docker exec gitlab cat /etc/gitlab/gitlab\.rb": Result(fetched(RB), "", 0),
    })


def _run(pool, **kw):
    run, out = make_run(pool, "MANAGERS=h1\nGITLAB=h1\n", task="gitlab.backup")
    taskdef.execute(TG.backup.body.swarmbook, run, list(run.settings.group("gitlab")), (), kw)
    return run, out.getvalue()


def test_backup_id_is_read_from_gitlabs_output():
    assert gitlabcmd.parse_backup_id(OUT) == BID
    assert gitlabcmd.parse_backup_id(f"Creating backup archive: {BID}_gitlab_backup.tar ... done\n") == BID
    assert gitlabcmd.parse_backup_id("Backup failed\n") == ""
    assert gitlabcmd.parse_backup_id("Backup ../../etc/x is done.\n") == ""  # never a path out of the folder
    assert gitlabcmd.backup_tar(BID) == f"/var/opt/gitlab/backups/{BID}_gitlab_backup.tar"
    assert gitlabcmd.backup_create_cmd() == "docker exec gitlab gitlab-backup create"


def test_a_gitlab_tar_has_backup_information():
    assert gitlabcmd.tar_problem(TAR) == ""
    assert "no backup_information.yml" in gitlabcmd.tar_problem(tar_bytes({"x": b"1"}))
    assert "not a tar" in gitlabcmd.tar_problem(b"not a tar at all" * 64)


def test_backup_brings_the_tar_the_secrets_and_gitlab_rb_all_private(tmp_path):
    pool = _pool()
    os.umask(0o022)
    run, out = _run(pool, to=str(tmp_path))
    assert run.failed() == [] and f"GitLab backup {BID}" in out and "s3cret-canary" not in out, out
    files = {p.name.split(".", 1)[1]: p for p in tmp_path.iterdir() if not p.name.endswith(".sha256")}
    assert sorted(files) == ["gitlab-secrets.json", "gitlab.rb", "tar"], files
    for ext, want in (("tar", TAR), ("gitlab-secrets.json", SECRETS), ("gitlab.rb", RB)):
        assert backupfile.read_checked(str(files[ext]), "t") == want
        assert oct(files[ext].stat().st_mode & 0o777) == "0o600"
    with tarfile.open(fileobj=io.BytesIO(files["tar"].read_bytes())) as tf:
        assert "repositories/demo.bundle" in tf.getnames()


def test_nothing_is_written_without_the_secrets_or_with_a_tar_that_is_not_gitlabs(tmp_path):
    run, out = _run(_pool(files=f"{gitlabcmd.GITLAB_RB}\n"), to=str(tmp_path))
    assert run.failed() == ["h1"] and "gitlab-secrets.json is missing" in out and list(tmp_path.iterdir()) == []
    run, out = _run(_pool(tar=tar_bytes({"x": b"1"})), to=str(tmp_path))
    assert run.failed() == ["h1"] and "no backup_information.yml" in out and list(tmp_path.iterdir()) == []
    run, out = _run(_pool(out="rake aborted!\n"), to=str(tmp_path))
    assert run.failed() == ["h1"] and "did not say 'Backup ... is done.'" in out and list(tmp_path.iterdir()) == []


def test_without_gitlab_rb_the_rest_is_written_and_said(tmp_path):
    run, out = _run(_pool(files=f"{gitlabcmd.SECRETS_JSON}\n"), to=str(tmp_path))
    assert run.failed() == [] and "does not exist" in out, out
    assert sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir()) == [
        "gitlab-secrets.json", "gitlab-secrets.json.sha256", "tar", "tar.sha256"]


def test_a_missing_folder_is_refused_before_any_host(tmp_path):
    settings = make_run(FakePool({}, {}), "MANAGERS=h1\nGITLAB=h1\n")[0].settings
    with pytest.raises(ConfigError, match="gitlab.backup: --to .* is not a folder"):
        TG._validate_backup(settings, to=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="--to FOLDER is missing"):
        TG._validate_backup(settings)


# --- gitlab.restore ---------------------------------------------------------------------------

def _backup(tmp_path, rb=True):
    for ext, data in (("tar", TAR), ("gitlab-secrets.json", SECRETS)) + ((("gitlab.rb", RB),) if rb else ()):
        backupfile.write(tmp_path, f"gitlab-h1-20261202T020000Z.{ext}", data)
    return str(tmp_path / "gitlab-h1-20261202T020000Z.tar")


def test_restore_follows_gitlabs_steps_and_restarts_whatever_happened(tmp_path):
    file = _backup(tmp_path)
    healthy = json.dumps({"Id": "c1", "State": {"Running": True, "Status": "running", "Health": {"Status": "healthy"}},
                          "Config": {}, "HostConfig": {}})
    pool = FakePool({containercmd.state_fact("gitlab"): (healthy, 0),
                     gitlabcmd.file_sum_fact(gitlabcmd.SECRETS_JSON): (f"{backupfile.sha256(SECRETS)}  x\n", 0)},
                    {r"^docker exec -i gitlab sh -c": Result("", "", 0), r"^docker exec gitlab gitlab-ctl stop": Result("", "", 0),
                     r"^docker exec gitlab gitlab-backup restore": Result("Restore task is done.\n", "", 0),
                     r"^docker restart gitlab$": Result("gitlab\n", "", 0)})
    run, out = make_run(pool, "MANAGERS=h1\nGITLAB=h1\n", task="gitlab.restore")
    taskdef.execute(TG.restore.body.swarmbook, run, list(run.settings.group("gitlab")), (), {"file": file, "yes": True})
    assert run.failed() == [] and "verified: GitLab healthy" in out.getvalue(), out.getvalue()
    bid = "gitlab-h1-20261202T020000Z"
    assert pool.changes() == [gitlabcmd.put_cmd(gitlabcmd.SECRETS_JSON), gitlabcmd.put_cmd(gitlabcmd.GITLAB_RB),
                              gitlabcmd.put_cmd(gitlabcmd.backup_tar(bid), owner="git"),
                              "docker exec gitlab gitlab-ctl stop puma", "docker exec gitlab gitlab-ctl stop sidekiq",
                              f"docker exec gitlab gitlab-backup restore BACKUP={bid} force=yes", "docker restart gitlab"]
    assert [stdin for c, stdin in pool.sent if c == gitlabcmd.put_cmd(gitlabcmd.SECRETS_JSON)] == [SECRETS]
    assert all("s3cret-canary" not in c for c in pool.changes()) and "s3cret-canary" not in out.getvalue()

    pool.responses[r"^docker exec gitlab gitlab-backup restore"] = Result("", "version mismatch", 1)
    run, out = make_run(pool, "MANAGERS=h1\nGITLAB=h1\n", task="gitlab.restore")
    taskdef.execute(TG.restore.body.swarmbook, run, list(run.settings.group("gitlab")), (), {"file": file, "yes": True})
    assert run.failed() == ["h1"] and pool.changes()[-1] == "docker restart gitlab"


def test_put_cmd_writes_private_and_gives_the_tar_to_git_only_where_git_exists(tmp_path):
    script = shlex.split(gitlabcmd.put_cmd("/x", owner="git"))
    assert script[:6] == ["docker", "exec", "-i", "gitlab", "sh", "-c"]
    target = tmp_path / "f"
    p = subprocess.run(["sh", "-c", script[6], str(target), "no-such-user-sb"], input=b"data", capture_output=True)
    assert p.returncode == 0 and target.read_bytes() == b"data" and oct(target.stat().st_mode & 0o777) == "0o600"


def test_restore_refusals_before_any_host(tmp_path):
    settings = make_run(FakePool({}, {}), "MANAGERS=h1\nGITLAB=h1\n")[0].settings
    file = _backup(tmp_path, rb=False)
    with pytest.raises(ConfigError, match="rerun with --yes"):
        TG._validate_restore(settings, file=file)
    TG._validate_restore(settings, file=file, yes=True)  # gitlab.rb is optional
    os.remove(file.replace(".tar", ".gitlab-secrets.json"))
    with pytest.raises(ConfigError, match="gitlab-secrets.json not found"):
        TG._validate_restore(settings, file=file, yes=True)
    with pytest.raises(ConfigError, match="needs the .tar of a gitlab.backup"):
        TG._validate_restore(settings, file=file + ".sha256", yes=True)
    Path(file).write_bytes(TAR + b"x")
    with pytest.raises(ConfigError, match="is corrupted"):
        TG._validate_restore(settings, file=file, yes=True)
