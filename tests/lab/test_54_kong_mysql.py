"""kong.* and mysql.up on the real lab, with real Postgres and MariaDB and a Kong stand-in.

Postgres (Debian postgresql 15, library/postgres:15 in the lab) and MariaDB (Debian
mariadb-server 10.11 as MYSQL_IMAGE) are real. Kong and kong-dashboard are stand-ins
(swarmbook/lab/standin/): `kong migrations` runs real SQL against the real Postgres and the
admin API stores services/routes there. The dashboard runs as in production: kongcmd's
`node -e` wrapper (real node, Debian's nodejs) reads the users from the env file and requires
/app/bin/kong-dashboard.js, which in the lab is a stand-in taking only `start --kong-url
--port --basic-auth` from process.argv (no environment) like the real CLI's yargs options.
NOT proved: real Kong's migrations, plugins or proxying; the real dashboard's UI, its yargs
version's parsing beyond those options, or node 10 of the real image (the lab has Debian's).
"""

import base64
import json
import urllib.error
import urllib.request

import pytest

from .sb import sb
from .test_50_gitlab_runner import prepared, run

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(lab):
    return prepared(lab)


def kong_host(lab):
    return lab.hosts[0]


def test_bootstrap_runs_migrations_once_and_keeps_admin_off_the_world(cluster):
    lab = cluster
    h = kong_host(lab)
    run(lab, h, "docker rm -f kong kong-dashboard kong-database >/dev/null 2>&1; rm -rf /srv/kong "
                "/etc/swarmbook/kong*.env")  # a fresh database, so bootstrap has work (reruns too)
    out = sb(lab, "kong.bootstrap")
    assert out.rc == 0, out.stdout + out.stderr
    assert [e["step"] for e in out.steps("changed") if "migrations" in e["step"]] == ["kong migrations bootstrap"]
    pg_pw = [ln.split("=", 1)[1] for ln in lab.hosts_env.read_text().splitlines() if ln.startswith("KONG_PG_PASSWORD=")][0]
    assert pg_pw not in out.stdout + out.stderr
    assert run(lab, h, "stat -c '%a %U' /etc/swarmbook/kong.env /etc/swarmbook/kong-database.env").stdout.split() == \
        ["600", "root", "600", "root"]
    assert pg_pw not in run(lab, h, "ps -eo args").stdout
    # the migrations really are in the real Postgres
    rows = run(lab, h, "docker exec kong-database psql -U kong -d kong -tAc "
                       "\"select name||':'||state from schema_meta\"").stdout.split()
    assert rows == ["000_base:executed"]
    # admin API: on the host's loopback only; proxy published
    ports = run(lab, h, "docker port kong").stdout
    assert "8001/tcp -> 127.0.0.1:8001" in ports and "8000/tcp -> 0.0.0.0:8000" in ports
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://{h.addr}:8001/", timeout=3)
    dashboard_works_with_users_only_in_its_env_file(lab, h)
    again = sb(lab, "kong.bootstrap")
    assert again.rc == 0 and again.changed == 0, again.stdout
    # the rerun trusts the record of this image + database instead of starting `migrations list`
    assert [e["reason"] for e in again.steps("ok") if e["step"] == "kong migrations"] == \
        ["up to date (recorded for this Kong image and database)"]


def dashboard_works_with_users_only_in_its_env_file(lab, h):
    users = [ln.split("=", 1)[1] for ln in lab.hosts_env.read_text().splitlines()
             if ln.startswith("KONG_DASHBOARD_USERS=")][0]
    name, _, pw = users.split()[0].partition("=")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://{h.addr}:8080/", timeout=5)
    assert e.value.code == 401
    req = urllib.request.Request(f"http://{h.addr}:8080/", headers={
        "Authorization": "Basic " + base64.b64encode(f"{name}:{pw}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=5) as r:  # it read Kong's admin API over the shared network
        assert json.loads(r.read())["kong"]["tagline"] == "Welcome to kong"
    # the container's process is `node -e <wrapper>`, and no process on the host has the password
    top = run(lab, h, "docker exec kong-dashboard cat /proc/1/cmdline | tr '\\0' ' '").stdout
    assert top.startswith("node -e const e=process.env") and pw not in top
    assert pw not in run(lab, h, "ps -eo args").stdout
    assert pw not in run(lab, h, "docker inspect --format '{{json .Config.Cmd}} {{json .Args}}' kong-dashboard").stdout


def test_service_and_route_created_once_then_updated_only_on_change(cluster):
    lab = cluster
    h = kong_host(lab)
    out = sb(lab, "kong.service", "demo", "--url", "http://demo_demo:9501", "--paths", "/demo")
    assert out.rc == 0 and out.changed == 2, out.stdout + out.stderr
    with urllib.request.urlopen(f"http://{h.addr}:8000/demo/x", timeout=5) as r:
        assert json.loads(r.read())["service"] == "demo"
    again = sb(lab, "kong.service", "demo", "--url", "http://demo_demo:9501", "--paths", "/demo")
    assert again.rc == 0 and again.changed == 0, again.stdout
    moved = sb(lab, "kong.service", "demo", "--url", "http://demo_demo:9502", "--paths", "/demo")
    assert moved.changed == 1 and moved.steps("changed")[0]["step"] == "service demo"
    svc = json.loads(run(lab, h, "curl -fsS http://127.0.0.1:8001/services/demo").stdout)
    assert svc["port"] == 9502


def test_kong_upgrade_runs_up_then_finish(cluster, tmp_path):
    lab = cluster
    env = tmp_path / "hosts.env"
    env.write_text(lab.hosts_env.read_text().replace("KONG_IMAGE=swarmbook-standin/kong:latest",
                                                     "KONG_IMAGE=swarmbook-standin/kong:next"))
    env.chmod(0o600)
    out = sb(lab, "kong.bootstrap", hosts_env=str(env))
    assert out.rc == 0, out.stdout + out.stderr
    steps = [e["step"] for e in out.steps("changed")]
    assert steps == ["kong migrations up", "container kong", "kong migrations finish"], steps
    assert sb(lab, "kong.bootstrap", hosts_env=str(env)).changed == 0
    back = sb(lab, "kong.bootstrap")  # the older image on a newer schema: container recreated, no migration
    assert back.rc == 0 and [e["step"] for e in back.steps("changed")] == ["container kong"]


def test_mysql_up_real_mariadb_answers_on_the_shared_network(cluster):
    lab = cluster
    m = lab.hosts[0]
    run(lab, m, "docker rm -f mysql >/dev/null 2>&1; rm -rf /srv/mysql; docker rmi -f mariadb:10.11 >/dev/null 2>&1; true")
    out = sb(lab, "mysql.up")
    assert out.rc == 0, out.stdout + out.stderr
    assert any("MariaDB" in e["reason"] for e in out.steps("ok") if e["step"] == "MySQL answers")
    pw = [ln.split("=", 1)[1] for ln in lab.hosts_env.read_text().splitlines() if ln.startswith("MYSQL_ROOT_PASSWORD=")][0]
    assert pw not in out.stdout + out.stderr
    assert run(lab, m, "test -d /srv/mysql/mysql && echo y").stdout.strip() == "y"  # data on the host
    # another container on default-network reaches it by name, with the root password
    q = run(lab, m, f"docker run --rm --network default-network -e MYSQL_PWD={pw} mariadb:10.11 "
                    "mysql -h mysql -uroot -N -e 'select 40+2'").stdout.strip()
    assert q == "42"
    again = sb(lab, "mysql.up")
    assert again.rc == 0 and again.changed == 0, again.stdout


def _mysql(lab, m, pw, sql):
    return run(lab, m, f"docker exec -e MYSQL_PWD={pw} mysql mysql -uroot -h127.0.0.1 -N -B -e \"{sql}\"").stdout.strip()


def test_mysql_backup_then_restore_brings_back_the_data(cluster, tmp_path):
    """Data written before the backup is back after the restore, row count and CHECKSUM TABLE
    equal, while what was changed after the backup (rows added, a database dropped) is gone."""
    lab = cluster
    m = lab.hosts[0]
    pw = [ln.split("=", 1)[1] for ln in lab.hosts_env.read_text().splitlines() if ln.startswith("MYSQL_ROOT_PASSWORD=")][0]
    _mysql(lab, m, pw, "DROP DATABASE IF EXISTS shop; CREATE DATABASE shop; CREATE TABLE shop.orders "
                       "(id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40), price DECIMAL(8,2)) ENGINE=InnoDB; "
                       "USE shop; INSERT INTO shop.orders (item, price) SELECT CONCAT('item-', seq), seq * 1.5 FROM seq_1_to_500;"
                       "CREATE DATABASE IF NOT EXISTS crm; CREATE TABLE IF NOT EXISTS crm.people (n INT); "
                       "INSERT INTO crm.people VALUES (1),(2),(3);")
    before = (_mysql(lab, m, pw, "SELECT COUNT(*) FROM shop.orders"), _mysql(lab, m, pw, "CHECKSUM TABLE shop.orders"))
    assert before[0] == "500"

    out = sb(lab, "mysql.backup", "--to", str(tmp_path))
    assert out.rc == 0, out.stdout + out.stderr
    (dump,) = tmp_path.glob("mysql-*.sql.gz")
    assert (tmp_path / (dump.name + ".sha256")).is_file() and pw not in out.stdout + out.stderr
    assert "databases: crm, shop" in out.steps("ok")[-1]["reason"] or "databases: shop, crm" in out.steps("ok")[-1]["reason"]

    _mysql(lab, m, pw, "INSERT INTO shop.orders (item, price) VALUES ('late', 9); DROP DATABASE crm;")
    refused = sb(lab, "mysql.restore", str(dump))  # without --yes: refused, nothing touched
    assert refused.rc == 2 and _mysql(lab, m, pw, "SELECT COUNT(*) FROM shop.orders") == "501"

    back = sb(lab, "mysql.restore", str(dump), "--yes")
    assert back.rc == 0, back.stdout + back.stderr
    after = (_mysql(lab, m, pw, "SELECT COUNT(*) FROM shop.orders"), _mysql(lab, m, pw, "CHECKSUM TABLE shop.orders"))
    assert after == before
    assert _mysql(lab, m, pw, "SELECT COUNT(*) FROM crm.people") == "3"
    assert pw not in back.stdout + back.stderr
