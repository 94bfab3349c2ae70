"""kong.backup/restore, gitlab.backup/restore and backup.all (issue 15 items 5 and 6) on the real lab,
reusing what the earlier files deployed (test_50 GitLab, test_52 Portainer, test_54 Kong and
MySQL); the fixture converges them again (0 changed on the suite's lab, ~6 s) so this file also
runs on its own. It prints each backup's size and time for the README.

Real here: Postgres 15 (pg_dump/psql inside kong-database), MariaDB, the swarm's raft state, the
SSH/base64 transfer, the files, modes and checksums on this machine, cron's empty environment.
Stand-ins: Kong (its admin API and proxy read the restored rows from the real Postgres, so a
route that answers after the restore was read from restored data; NOT proved: real Kong's cache,
plugins or proxying to an upstream), GitLab (`gitlab-backup create` of the stand-in tars
/var/opt/gitlab/git-data/repositories with a backup_information.yml like GitLab's, its
`gitlab-backup restore` puts them back; NOT proved:
real GitLab's database dump and restore, its uploads/artifacts/LFS/registry, or
whether real GitLab accepts the restore: its version check, its `gitlab-rake gitlab:check`).
"""

import io
import json
import os
import re
import subprocess
import tarfile
import time
import urllib.error
import urllib.request

import pytest

from swarmbook import backupfile

from .sb import sb
from .test_50_gitlab_runner import prepared, run

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(lab):
    prepared(lab)
    out = sb(lab, "sshd.move-port", "gitlab.up", "mysql.up", "portainer.up", "kong.bootstrap")
    assert out.rc == 0, out.stdout + out.stderr
    return lab


def proxied(h, path: str):
    """What the Kong stand-in's proxy answers for ``path``: (status, JSON)."""
    try:
        with urllib.request.urlopen(f"http://{h.addr}:8000{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def admin(lab, h, method: str, path: str) -> str:
    return run(lab, h, f"curl -sS -o /dev/null -w '%{{http_code}}' -X {method} http://127.0.0.1:8001{path}").stdout


def kind(name: str) -> str:
    """What follows the time stamp in a backup's name (tar, sql.gz, gitlab-secrets.json ...)."""
    return re.search(r"-\d{8}T\d{6}Z\.(.+)$", name).group(1)


def secret(lab, key: str) -> str:
    return [ln.split("=", 1)[1] for ln in lab.hosts_env.read_text().splitlines() if ln.startswith(f"{key}=")][0]


def test_kong_restore_brings_back_services_and_routes_that_answer(cluster, tmp_path):
    lab = cluster
    h = lab.hosts[0]
    assert sb(lab, "kong.service", "shop", "--url", "http://shop:8080", "--paths", "/shop").rc == 0
    assert sb(lab, "kong.service", "demo", "--url", "http://demo_demo:9501", "--paths", "/demo").rc == 0
    assert proxied(h, "/shop/cart") == (200, {"route": "shop", "service": "shop", "standin": True})

    t0 = time.monotonic()
    out = sb(lab, "kong.backup", "--to", str(tmp_path))
    took = time.monotonic() - t0
    assert out.rc == 0, out.stdout + out.stderr
    (dump,) = tmp_path.glob("kong-*.sql.gz")
    print(f"kong.backup: {dump.stat().st_size} bytes in {took:.1f} s ({out.steps('ok')[-1]['reason']})")
    assert secret(lab, "KONG_PG_PASSWORD") not in out.stdout + out.stderr

    # after the backup: a service and its route deleted, another moved, a new one added
    assert admin(lab, h, "DELETE", "/services/shop") == "204"
    assert sb(lab, "kong.service", "demo", "--url", "http://demo_demo:9999", "--paths", "/demo").changed == 1
    assert sb(lab, "kong.service", "late", "--url", "http://late:80", "--paths", "/late").rc == 0
    assert proxied(h, "/shop/cart")[0] == 404

    refused = sb(lab, "kong.restore", str(dump))  # without --yes: refused, nothing touched
    assert refused.rc == 2 and proxied(h, "/shop/cart")[0] == 404
    t0 = time.monotonic()
    back = sb(lab, "kong.restore", str(dump), "--yes")
    took = time.monotonic() - t0
    assert back.rc == 0, back.stdout + back.stderr
    assert [e["step"] for e in back.steps("changed")] == ["stop kong", "restore kong database", "start kong"]
    print(f"kong.restore: {took:.1f} s ({back.steps('ok')[-1]['reason']})")

    # through Kong (the stand-in's proxy, reading the restored rows): the deleted route answers again
    assert proxied(h, "/shop/cart") == (200, {"route": "shop", "service": "shop", "standin": True})
    assert proxied(h, "/late")[0] == 404  # what came after the backup is gone
    assert json.loads(run(lab, h, "curl -fsS http://127.0.0.1:8001/services/demo").stdout)["port"] == 9501
    assert sb(lab, "kong.service", "shop", "--url", "http://shop:8080", "--paths", "/shop").changed == 0
    again = sb(lab, "kong.restore", str(dump), "--yes")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_gitlab_backup_then_restore_brings_back_a_repository_and_the_secrets(cluster, tmp_path):
    lab = cluster
    h = lab.hosts[0]
    marker = f"ref: refs/heads/main-{time.time_ns()}"
    run(lab, h, "docker exec gitlab sh -c 'mkdir -p /var/opt/gitlab/git-data/repositories/demo.git && "
                f"echo \"{marker}\" > /var/opt/gitlab/git-data/repositories/demo.git/HEAD'")
    t0 = time.monotonic()
    out = sb(lab, "gitlab.backup", "--to", str(tmp_path))
    took = time.monotonic() - t0
    assert out.rc == 0, out.stdout + out.stderr
    files = {kind(p.name): p for p in tmp_path.iterdir() if not p.name.endswith(".sha256")}
    assert sorted(files) == ["gitlab-secrets.json", "gitlab.rb", "tar"], files
    print(f"gitlab.backup: tar {files['tar'].stat().st_size} bytes in {took:.1f} s")
    for p in files.values():
        assert oct(p.stat().st_mode & 0o777) == "0o600", p
        backupfile.read_checked(str(p), "t")
    with tarfile.open(fileobj=io.BytesIO(files["tar"].read_bytes())) as tf:
        assert "backup_information.yml" in tf.getnames()
        assert tf.extractfile("repositories/demo.git/HEAD").read().decode().strip() == marker
    assert files["gitlab-secrets.json"].read_bytes() == run(lab, h, "cat /srv/gitlab/config/gitlab-secrets.json").stdout.encode()
    assert files["gitlab.rb"].read_bytes() == run(lab, h, "cat /srv/gitlab/config/gitlab.rb").stdout.encode()
    assert "db_key_base" in files["gitlab-secrets.json"].read_text()
    gitlab_id = re.search(r"GitLab backup (\S+) in", out.steps("ok")[-1]["reason"]).group(1)
    assert run(lab, h, f"test -f /srv/gitlab/data/backups/{gitlab_id}_gitlab_backup.tar && echo y").stdout.strip() == "y"
    assert secret(lab, "GITLAB_SMTP_PASSWORD") not in out.stdout + out.stderr

    # after the backup: the repository gone, the secrets file changed; then the restore
    run(lab, h, "docker exec gitlab rm -rf /var/opt/gitlab/git-data/repositories/demo.git && "
                "echo '{\"changed\": true}' > /srv/gitlab/config/gitlab-secrets.json")
    assert sb(lab, "gitlab.restore", str(files["tar"])).rc == 2  # without --yes: refused, nothing touched
    t0 = time.monotonic()
    back = sb(lab, "gitlab.restore", str(files["tar"]), "--yes")
    took = time.monotonic() - t0
    assert back.rc == 0, back.stdout + back.stderr
    print(f"gitlab.restore: {took:.1f} s (GitLab restarted and healthy again)")
    assert run(lab, h, "cat /srv/gitlab/data/git-data/repositories/demo.git/HEAD").stdout.strip() == marker
    assert run(lab, h, "cat /srv/gitlab/config/gitlab-secrets.json").stdout.encode() == \
        files["gitlab-secrets.json"].read_bytes()
    assert run(lab, h, "stat -c %a /srv/gitlab/config/gitlab-secrets.json").stdout.strip() == "600"
    assert secret(lab, "GITLAB_SMTP_PASSWORD") not in back.stdout + back.stderr
    assert sb(lab, "gitlab.up").changed == 0


def test_backup_all_from_the_cron_script_makes_one_folder_with_a_manifest(cluster, tmp_path):
    """backup.cron installs the job; its script, run as cron runs it (empty environment), makes
    one dated folder with every part and a manifest; --keep 2 leaves our newest older folder and
    anything that is not ours."""
    lab = cluster
    for stamp in ("20261130T020000Z", "20261201T020000Z"):
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / "manifest.json").write_text("{}\n")
    (tmp_path / "20261129T020000Z").mkdir()  # no manifest: not ours
    inst = sb(lab, "backup.cron", "--schedule", "@yearly", "--to", str(tmp_path), "--keep", "2", "--offline")
    try:
        assert inst.rc == 0 and inst.changed == 2, inst.stdout + inst.stderr
        assert sb(lab, "backup.cron", "--schedule", "@yearly", "--to", str(tmp_path), "--keep", "2",
                  "--offline").changed == 0
        entry = open("/etc/cron.d/swarmbook-backup-all").read()
        assert f"@yearly root flock -n /run/lock/swarmbook-cron-swarmbook-backup-all.lock {tmp_path}/.cron/backup-all.sh" in entry
        t0 = time.monotonic()
        p = subprocess.run(["env", "-i", "HOME=/root", "LOGNAME=root", "SHELL=/bin/sh", "PATH=/usr/bin:/bin",
                            "/bin/sh", "-c", f"{tmp_path}/.cron/backup-all.sh >> {tmp_path}/.cron/backup-all.log 2>&1"],
                           timeout=900)
        took = time.monotonic() - t0
        log = (tmp_path / ".cron" / "backup-all.log").read_text()
        assert p.returncode == 0, log[-3000:]
    finally:
        removed = sb(lab, "backup.cron", "--to", str(tmp_path), "--remove")
    assert removed.rc == 0 and not os.path.exists("/etc/cron.d/swarmbook-backup-all"), removed.stdout
    for key in ("MYSQL_ROOT_PASSWORD", "KONG_PG_PASSWORD", "GITLAB_SMTP_PASSWORD"):
        assert secret(lab, key) not in log

    ours = sorted(d.name for d in tmp_path.iterdir() if backupfile.ours(d))
    assert len(ours) == 2 and ours[0] == "20261201T020000Z", ours
    assert (tmp_path / "20261129T020000Z").is_dir() and not (tmp_path / "20261130T020000Z").exists()
    folder = tmp_path / ours[1]
    manifest = json.loads(backupfile.read_checked(str(folder / "manifest.json"), "t"))
    parts = {m["what"]: m for m in manifest["parts"]}
    assert [m["status"] for m in manifest["parts"]] == ["ok"] * 5, manifest
    print(f"backup.all (from the cron script): {took:.1f} s")
    for m in manifest["parts"]:
        assert m["files"], m
        for f in m["files"]:
            assert backupfile.sha256((folder / f["file"]).read_bytes()) == f["sha256"]
            assert (folder / f["file"]).stat().st_size == f["size"]
        print(f"  {m['what']:<10} {m['host']:<14} {m['seconds']:>5.1f} s  "
              + ", ".join(f"{kind(f['file'])} {f['size'] / 1024:.1f} KiB" for f in m["files"]))
    assert {f["file"].split("-", 1)[0] for m in manifest["parts"] for f in m["files"]} == \
        {"mysql", "kong", "gitlab", "portainer", "swarm"}
    assert parts["swarm"]["host"] == lab.hosts[0].addr or parts["swarm"]["host"].startswith(lab.hosts[0].addr)
    assert sb(lab, "swarm.status").rc == 0  # the manager is back after its copy
