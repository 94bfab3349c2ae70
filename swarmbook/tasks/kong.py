"""Kong gateway on the KONG host: Postgres and Kong on the shared network, migrations, the
dashboard behind basic auth, services/routes through the admin API, and backup/restore of
its Postgres (all of Kong's configuration lives there).

Assumes Docker (docker.install) and the attachable shared network (net.create). The admin API
is published on KONG_ADMIN_BIND (127.0.0.1 by default): reach it over SSH, not from the world.
"""

from __future__ import annotations

import ipaddress
import json as jsonlib
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, host_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import containercmd, containers, facts, kongcmd, backupfile
else:
    containercmd = lazy("swarmbook.containercmd")
    containers = lazy("swarmbook.containers")
    facts = lazy("swarmbook.facts")
    kongcmd = lazy("swarmbook.kongcmd")
    backupfile = lazy("swarmbook.backupfile")


def _bind(settings, admin_bind=None) -> str:
    bind = settings.get("KONG_ADMIN_BIND", admin_bind)
    try:
        ipaddress.ip_address(bind)
    except ValueError:
        refuse(f"--admin-bind {bind!r} is not an IP address")
    return bind


def _validate_bootstrap(settings, admin_bind=None, timeout=180):
    _bind(settings, admin_bind)
    if not settings["KONG_PG_PASSWORD"]:
        refuse(f"KONG_PG_PASSWORD is empty (set it in the environment or {settings.source})")
    bad = kongcmd.bad_users(settings["KONG_DASHBOARD_USERS"].reveal())
    if bad:
        refuse(bad + f" (environment or {settings.source})")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@host_task(group="kong", validate=_validate_bootstrap, help={
    "admin-bind": "host address for the admin API 8001/8444 (default KONG_ADMIN_BIND, 127.0.0.1; "
                  "0.0.0.0 opens it to everyone who reaches the host)",
    "timeout": "seconds to wait for Postgres and for Kong's admin API (default 180)",
})
def bootstrap(h: Host, admin_bind=None, timeout=180):
    """Run Postgres and Kong on the shared network (migrations first), and the dashboard with basic auth."""
    s = h.settings
    bind, timeout = _bind(s, admin_bind), int(timeout)
    net = s["NETWORK_NAME"]
    pg = s["KONG_PG_PASSWORD"].reveal()
    db, gw = kongcmd.database(s["KONG_DB_IMAGE"], net), kongcmd.gateway(s["KONG_IMAGE"], net, bind)
    dash = kongcmd.dashboard(s["KONG_DASHBOARD_IMAGE"], net, s["KONG_DASHBOARD_PORT"])
    admin = kongcmd.admin_url(bind)
    dash_url = f"http://127.0.0.1:{s['KONG_DASHBOARD_PORT']}/"
    # everything a converged host needs, in one round trip with few docker runs (~45 ms each)
    f = h.probe(facts.command_exists("docker"), containercmd.network_fact(net), containercmd.states_fact([db.name, gw.name, dash.name]),
                *(facts.file_state(p, p) for p in (kongcmd.DB_ENV, kongcmd.KONG_ENV, kongcmd.DASH_ENV, kongcmd.MIGRATED)),
                containercmd.image_id_fact(gw.image),
                kongcmd.admin_ok_fact(admin), kongcmd.dashboard_code_fact(dash_url))
    if not f["has:docker"]:
        h.needs("kong", "docker is not installed (run docker.install first)")
    network = f[f"network:{net}"]
    if not network or (network["driver"] == "overlay" and not network["attachable"]):
        h.needs("kong", f"network {net} is missing or not attachable (run net.create first)")
    if bind == "0.0.0.0":
        h.note("the Kong admin API is published on 0.0.0.0: anyone who reaches this host can reconfigure it",
               level="warning")
    state = f["containers"]
    db_changed = containers.ensure(h, db, state[kongcmd.DB], secrets=kongcmd.db_secrets(pg), env_state=f[kongcmd.DB_ENV])
    env_changed = containers.ensure_env(h, kongcmd.KONG_ENV, kongcmd.kong_secrets(pg), f[kongcmd.KONG_ENV])
    if h.check:
        h.ok("migrations", "checked after Postgres runs (not in check mode)")
        containers.ensure(h, gw, state[kongcmd.KONG], secrets=kongcmd.kong_secrets(pg), env_state="written",
                          env_changed=env_changed)
        return
    recorded = (f[kongcmd.MIGRATED] or {}).get("content", "").strip()
    migrated = not db_changed and recorded == kongcmd.mark(f[f"image:{gw.image}"], (state[kongcmd.DB] or {}).get("id"))
    # Postgres must answer before migrations or a Kong (re)start; a converged host (same database
    # container, migrations recorded for it and this image, Kong answering) skips the check
    if db_changed or not (migrated and f["admin_ok"]):
        h.wait("Postgres to accept connections", lambda: h.try_run(kongcmd.db_ready_cmd()).rc == 0, timeout=timeout)
    if migrated:
        h.ok("kong migrations", "up to date (recorded for this Kong image and database)")
        listed_rc = None
    else:
        listed_rc = _migrate(h, gw.image, net)
    gw_changed = containers.ensure(h, gw, state[kongcmd.KONG], secrets=kongcmd.kong_secrets(pg),
                                   env_state="written", env_changed=env_changed)
    if listed_rc in (kongcmd.LIST_NEW, kongcmd.LIST_PENDING):  # every Kong node runs the new version: finish
        h.change("kong migrations finish", kongcmd.migrations_cmd(gw.image, net, "finish"), reason="after up")
    if listed_rc is not None:
        h.run(kongcmd.record_mark_cmd(gw.image), step="record kong migrations")
    if gw_changed or not f["admin_ok"]:
        h.wait("Kong admin API", lambda: h.try_run(containercmd.http_ok_cmd(admin)).rc == 0, timeout=timeout, interval=2)
    h.ok("Kong admin API", f"{bind}:8001 ({'local only' if bind.startswith('127.') else 'published'})")
    dash_changed = containers.ensure(h, dash, state[kongcmd.DASHBOARD],
                                     secrets=kongcmd.dashboard_secrets(s["KONG_DASHBOARD_USERS"].reveal()),
                                     env_state=f[kongcmd.DASH_ENV])
    _verify_dashboard(h, dash_url, s["KONG_DASHBOARD_USERS"].reveal().split()[0], timeout,
                      ready=f["dash_code"] == "401" and not dash_changed)


def _migrate(h: Host, image: str, net: str) -> int:
    """`kong migrations list`, then bootstrap or up as it says; returns what list said."""
    listed = h.try_run(kongcmd.migrations_cmd(image, net, "list"), timeout=300)
    if listed.rc == kongcmd.LIST_BOOTSTRAP:
        h.change("kong migrations bootstrap", kongcmd.migrations_cmd(image, net, "bootstrap"), reason="new database")
    elif listed.rc == kongcmd.LIST_NEW:
        h.change("kong migrations up", kongcmd.migrations_cmd(image, net, "up"), reason="new migrations")
    elif listed.rc in (kongcmd.LIST_OK, kongcmd.LIST_PENDING):
        h.ok("kong migrations", "database up to date" if listed.rc == kongcmd.LIST_OK else "pending: finish below")
    else:
        raise StepFailed(f"kong migrations list: exit {listed.rc}: "
                         f"{(listed.stderr.strip() or listed.stdout.strip()).splitlines()[-1:]}")
    return listed.rc


def _verify_dashboard(h: Host, url: str, user: str, timeout: int, *, ready: bool) -> None:
    if not ready:
        h.wait("dashboard", lambda: h.try_run(kongcmd.status_code_cmd(url)).stdout.strip() == "401", timeout=timeout,
               interval=2)
    name, _, pw = user.partition("=")
    auth = h.try_run(kongcmd.auth_status_cmd(url), stdin=kongcmd.curl_user_config(name, pw))  # the password: on stdin
    if auth.stdout.strip() != "200":
        h.fail("dashboard basic auth", f"expected 200 with credentials, got {auth.stdout.strip() or auth.rc}")
    h.ok("dashboard basic auth", f"401 without, 200 with credentials on {url}")


def _validate_service(settings, name=None, url=None, paths=None, admin_bind=None):
    if not kongcmd.name_ok(name):
        refuse(f"service name {name!r}: letters, digits, . _ ~ - (e.g. inv kong.service demo --url ...)")
    if not url or kongcmd.service_wanted(url)["protocol"] not in ("http", "https") or not kongcmd.service_wanted(url)["host"]:
        refuse(f"--url {url!r} is not an http(s)://host[:port][/path] URL")
    plist = [p.strip() for p in (paths or "").split(",") if p.strip()]
    if not plist or any(not p.startswith("/") for p in plist):
        refuse("--paths needs a comma list of paths starting with / (e.g. /demo)")
    _bind(settings, admin_bind)


@host_task(group="kong", validate=_validate_service, positional=["name"], help={
    "name": "service name (its route has the same name)",
    "url": "upstream URL, e.g. http://demo_demo:9501 (a name on the shared network)",
    "paths": "comma list of route paths, e.g. /demo",
    "admin-bind": "where the admin API listens on the host (default KONG_ADMIN_BIND)",
})
def service(h: Host, name=None, url=None, paths=None, admin_bind=None):
    """Create or update a Kong service and its route through the admin API, only when different."""
    plist = [p.strip() for p in paths.split(",") if p.strip()]
    bind = _bind(h.settings, admin_bind)
    svc_url = kongcmd.admin_url(bind, f"/services/{name}")
    route_url = kongcmd.admin_url(bind, f"/services/{name}/routes/{name}")
    f = h.probe(kongcmd.admin_get_fact("svc", svc_url), kongcmd.admin_get_fact("route", route_url))
    for what in ("svc", "route"):
        if f[what][0] not in (200, 404):
            h.fail("kong admin API", f"no answer from {kongcmd.admin_url(bind)} (status {f[what][0]}; run kong.bootstrap)")
    why = kongcmd.service_differs(f["svc"][1] if f["svc"][0] == 200 else None, url)
    if why:
        _put(h, f"service {name}", svc_url, {"url": url}, why)
    else:
        h.ok(f"service {name}", url)
    why = kongcmd.route_differs(f["route"][1] if f["route"][0] == 200 else None, name, plist)
    if why:
        _put(h, f"route {name}", route_url, {"paths": plist}, why)
    else:
        h.ok(f"route {name}", ",".join(plist))


def _put(h: Host, step: str, url: str, body: dict, why: str) -> None:
    h.change(step, None, reason=why)  # reported first: the PUT below fails the host if refused
    if h.check:
        return
    res = h.run(kongcmd.put_cmd(url), stdin=jsonlib.dumps(body), step=step)
    status, answer = kongcmd.split_response(res.stdout)
    if status not in (200, 201):
        h.fail(step, f"admin API answered {status}: {(answer or {}).get('message', res.stdout[-200:])}")


# --- backup and restore of Kong's Postgres (services, routes, plugins, consumers: all of Kong's config) ---

def _validate_backup(settings, to=None):
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"kong.backup: {problem}")


def _database_running(h: Host) -> dict:
    """The states of kong-database (which must run) and kong."""
    state = h.probe(containercmd.states_fact([kongcmd.DB, kongcmd.KONG]))["containers"]
    if not (state.get(kongcmd.DB) or {}).get("running"):
        h.fail("kong", f"no running container {kongcmd.DB} on {h.name} (kong.bootstrap)")
    return state


def _dump(h: Host, step: str) -> bytes:
    """Kong's database as SQL, fetched and checked (a failure ends the host's run)."""
    import gzip

    data, problem = backupfile.received(h.run(kongcmd.dump_cmd(), step=step, timeout=3600).stdout)
    if problem:
        h.fail(step, f"{problem}; nothing written")
    try:
        sql = gzip.decompress(data)
    except (OSError, EOFError):
        h.fail(step, "the dump is not gzip; nothing written")
    problem = kongcmd.dump_problem(sql)
    if problem:
        h.fail(step, f"pg_dump failed: {problem}; nothing written")
    return data


def _counts(sql: bytes) -> str:
    return f"{len(kongcmd.dump_names(sql, 'services'))} services, {len(kongcmd.dump_names(sql, 'routes'))} routes"


@cluster_task(group="kong", validate=_validate_backup, help={
    "to": "folder on this machine for kong-HOST-TIME.sql.gz and its .sha256 (never overwritten)",
})
def backup(run: Run, specs: list[HostSpec], to=None):
    """Dump Kong's Postgres (pg_dump, plain SQL: services, routes, plugins, consumers) to --to FOLDER, gzip + sha256."""
    import gzip
    from pathlib import Path

    def body(h: Host) -> None:
        _database_running(h)
        if h.check:
            h.ok("backup", f"would write {Path(to) / backupfile.name('kong', h.name, 'TIME', 'sql.gz')}")
            return
        data = _dump(h, "pg_dump")
        name = backupfile.name("kong", h.name, backupfile.stamp(), "sql.gz")
        try:
            path, digest = backupfile.write(to, name, data)
        except FileExistsError:
            h.fail("backup", f"{Path(to) / name} already exists; backups are never overwritten (retry in a second)")
        # the host is unchanged: a backup is a read, so it reports ok (with where it went)
        h.ok("backup", f"{path} ({len(data)} bytes, {_counts(gzip.decompress(data))}; sha256 {digest[:12]}...)")

    run.one(specs[0], body)


def _read_dump(file: str | None) -> bytes:
    return backupfile.read_sql(file, "kong.restore", kongcmd.dump_problem)


def _validate_restore(settings, file=None, yes=False, timeout=180):
    _read_dump(file)
    if not yes:
        refuse("kong.restore replaces Kong's whole database (services, routes, plugins, consumers) and stops "
               "Kong meanwhile: rerun with --yes")
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="kong", validate=_validate_restore, positional=["file"], help={
    "file": "a kong.backup file (its .sha256 must be beside it)",
    "yes": "confirm: Kong's database is replaced by the backup (Kong is stopped meanwhile)",
    "timeout": "seconds to wait for Kong's admin API after the restore (default 180)",
})
def restore(run: Run, specs: list[HostSpec], file=None, yes=False, timeout=180):
    """Restore Kong's database from a checked kong.backup (Kong stopped meanwhile), then check each service and route answers."""
    import gzip
    from pathlib import Path

    sql = _read_dump(file)
    services, routes = kongcmd.dump_names(sql, "services"), kongcmd.dump_names(sql, "routes")
    admin = kongcmd.admin_url(_bind(run.settings))

    def body(h: Host) -> None:
        state = _database_running(h)
        if kongcmd.dump_body(gzip.decompress(_dump(h, "pg_dump (what is there now)"))) == kongcmd.dump_body(sql):
            h.ok("kong database", f"already holds {Path(file).name}")
            return
        running = bool((state.get(kongcmd.KONG) or {}).get("running"))
        if running:
            h.change("stop kong", kongcmd.container_cmd("stop"), reason="Kong caches what it read", timeout=120)
        try:
            h.change("restore kong database", kongcmd.restore_cmd(), stdin=sql, reason=Path(file).name, timeout=3600)
        finally:  # whatever happened, Kong runs again (on the old data when the restore failed: one transaction)
            if running:
                h.change("start kong", kongcmd.container_cmd("start"), timeout=120)
        if h.check or not running:
            return
        h.wait("Kong admin API", lambda: h.try_run(containercmd.http_ok_cmd(admin)).rc == 0, timeout=int(timeout), interval=1)
        _verify(h, admin, services, routes)

    run.one(specs[0], body)


def _verify(h: Host, admin: str, services: list[str], routes: list[str]) -> None:
    """Every service and route of the backup answers on Kong's admin API."""
    f = h.probe(*(kongcmd.admin_get_fact(f"services/{n}", f"{admin.rstrip('/')}/services/{n}") for n in services),
                *(kongcmd.admin_get_fact(f"routes/{n}", f"{admin.rstrip('/')}/routes/{n}") for n in routes))
    missing = [k for k, (status, _) in f.items() if status != 200]
    if missing:
        raise StepFailed(f"verify: after the restore Kong does not know {', '.join(missing[:10])}")
    h.ok("verified", f"{len(services)} services and {len(routes)} routes of the backup answer on the admin API")


ns = Collection("kong", bootstrap, service, backup, restore)
