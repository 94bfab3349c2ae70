"""Pure builders for Kong on the shared network: its Postgres, migrations, the gateway with
the admin API kept off the world by default, the dashboard behind basic auth, and the admin
API calls that create or update services and routes only when they differ."""

from __future__ import annotations

import json
import re
import urllib.parse

from .containercmd import Container, http_ok_cmd
from .facts import Fact
from .shell import join, quote

DB, KONG, DASHBOARD = "kong-database", "kong", "kong-dashboard"
ENV_DIR = "/etc/swarmbook"
DB_ENV, KONG_ENV, DASH_ENV = f"{ENV_DIR}/kong-database.env", f"{ENV_DIR}/kong.env", f"{ENV_DIR}/kong-dashboard.env"
DATA = "/srv/kong/postgres"
# `kong migrations list` exit codes (kong/cmd/migrations.lua)
LIST_OK, LIST_BOOTSTRAP, LIST_PENDING, LIST_NEW = 0, 3, 4, 5


def database(image: str, network: str) -> Container:
    """The runbook's kong-database, not published (only Kong on the network needs it), data kept."""
    return Container(name=DB, image=image, network=network, env_file=DB_ENV,
                     env=(("POSTGRES_USER", "kong"), ("POSTGRES_DB", "kong")),
                     volumes=(f"{DATA}:/var/lib/postgresql/data",))


def db_secrets(password: str) -> dict[str, str]:
    return {"POSTGRES_PASSWORD": password}


def kong_secrets(password: str) -> dict[str, str]:
    return {"KONG_DATABASE": "postgres", "KONG_PG_HOST": DB, "KONG_PG_USER": "kong",
            "KONG_PG_DATABASE": "kong", "KONG_PG_PASSWORD": password}


def gateway(image: str, network: str, admin_bind: str) -> Container:
    """Kong: proxy 8000/8443 on every address; admin 8001/8444 only on ``admin_bind``."""
    env = (("KONG_PROXY_ACCESS_LOG", "/dev/stdout"), ("KONG_ADMIN_ACCESS_LOG", "/dev/stdout"),
           ("KONG_PROXY_ERROR_LOG", "/dev/stderr"), ("KONG_ADMIN_ERROR_LOG", "/dev/stderr"),
           ("KONG_ADMIN_LISTEN", "0.0.0.0:8001, 0.0.0.0:8444 ssl"))
    return Container(name=KONG, image=image, network=network, env_file=KONG_ENV, env=env,
                     ports=("8000:8000", "8443:8443", f"{admin_bind}:8001:8001", f"{admin_bind}:8444:8444"))


# pgbi/kong-dashboard (v3) reads its users only from `start --basic-auth u=p ...` (yargs over
# process.argv) and nothing from the environment, and argv is world-readable in every `ps` on the
# host. So node runs a short program (no secret in it) that reads the users and Kong's URL from
# the environment, puts them into process.argv and then requires the image's CLI, which parses
# process.argv at that moment; the OS keeps seeing `node -e <program>`.
DASHBOARD_CLI = "/app/bin/kong-dashboard.js"  # the image's CLI (WORKDIR /app, ./docker/entrypoint.sh runs it)
AUTH_ENV, KONG_URL_ENV = "KONG_DASHBOARD_AUTH", "KONG_DASHBOARD_KONG_URL"


def dashboard_program(cli: str = DASHBOARD_CLI) -> str:
    """The ``node -e`` program (double quotes only, so it quotes cleanly for the shell). It refuses
    to start without Kong's URL or with a user that is not exactly ``user=password`` (kong-dashboard
    would skip such a user, and serve without auth if none is left)."""
    cli, why = json.dumps(cli), json.dumps(f"kong-dashboard: {KONG_URL_ENV} and {AUTH_ENV} "
                                           "(user=password ...) are needed")
    return (f"const e=process.env,u=(e.{AUTH_ENV}||\"\").split(/\\s+/).filter(Boolean);"
            f"if(!e.{KONG_URL_ENV}||!u.length||u.some(x=>x.split(\"=\").length!==2||x[0]===\"-\"))"
            f"{{console.error({why});process.exit(1)}}"
            f"process.argv=[process.argv[0],{cli},\"start\",\"--kong-url\",e.{KONG_URL_ENV},"
            f"\"--basic-auth\",...u];require({cli})")


def dashboard(image: str, network: str, port: int) -> Container:
    """kong-dashboard behind basic auth: users from its env file, never in any process's argv."""
    return Container(name=DASHBOARD, image=image, network=network, env_file=DASH_ENV,
                     env=((KONG_URL_ENV, f"http://{KONG}:8001"),), ports=(f"{port}:8080",),
                     entrypoint="node", command=("-e", dashboard_program()))


def dashboard_secrets(users: str) -> dict[str, str]:
    return {AUTH_ENV: " ".join(users.split())}


def bad_users(users: str) -> str:
    """Why ``users`` cannot be kong-dashboard's --basic-auth ('' when it can)."""
    for u in users.split():
        name, eq, pw = u.partition("=")
        if not eq or not name or not pw:
            return "KONG_DASHBOARD_USERS must be 'user=password [user2=password2 ...]'"
        if "=" in pw:  # kong-dashboard splits on every '=' and skips such a user
            return f"KONG_DASHBOARD_USERS: user {name!r}: the password may not contain '='"
        if name.startswith("-"):  # yargs would read it as an option
            return f"KONG_DASHBOARD_USERS: user {name!r} may not start with '-'"
    return "" if users.split() else "KONG_DASHBOARD_USERS is empty"


def migrations_cmd(image: str, network: str, action: str) -> str:
    """A one-off Kong container that runs `kong migrations ACTION` against kong-database."""
    return join(["docker", "run", "--rm", "--network", network, "--env-file", KONG_ENV, image,
                 "kong", "migrations", action])


def db_ready_cmd() -> str:
    return join(["docker", "exec", DB, "pg_isready", "-q", "-U", "kong", "-d", "kong"])


# `kong migrations list` starts a container (over a second). After migrations complete, the
# Kong image ID and the database container ID are recorded here; while both are unchanged a
# rerun trusts the record. A new image or a new database container lists again.
MIGRATED = f"{ENV_DIR}/kong-migrated"


def mark_cmd(image: str) -> str:
    """Prints '<image id> <database container id>' (a field is empty when missing)."""
    return (f"printf '%s %s\\n' \"$(docker image inspect --format '{{{{.Id}}}}' {quote(image)} 2>/dev/null)\" "
            f"\"$(docker inspect --type container --format '{{{{.Id}}}}' {DB} 2>/dev/null)\"")


def mark(image_id: str | None, db_container_id: str | None) -> str | None:
    """What :func:`mark_cmd` prints for this image and database container (None if one is missing)."""
    return f"{image_id} {db_container_id}" if image_id and db_container_id else None


def record_mark_cmd(image: str) -> str:
    return f"(umask 077; {mark_cmd(image)} > {MIGRATED})"


# --- admin API ---------------------------------------------------------------------------

def admin_url(bind: str, path: str = "/") -> str:
    host = "127.0.0.1" if bind in ("0.0.0.0", "127.0.0.1", "") else bind
    return f"http://{host}:8001{path}"


def get_cmd(url: str) -> str:
    """GET printing the body, then the status code on the last line."""
    return join(["curl", "-sS", "-m", "10", "-w", "\\n%{http_code}", url])


def put_cmd(url: str) -> str:
    """PUT a JSON body read from stdin; body then status code."""
    return join(["curl", "-sS", "-m", "10", "-X", "PUT", "-H", "Content-Type: application/json",
                 "--data-binary", "@-", "-w", "\\n%{http_code}", url])


def admin_get_fact(name: str, url: str) -> Fact:
    """(status, JSON body) of a GET on the admin API; (0, None) when it does not answer."""
    return Fact(name, get_cmd(url), lambda t, rc: split_response(t) if rc == 0 else (0, None))


def admin_ok_fact(url: str) -> Fact:
    """True when the admin API answers ``url`` with a 2xx."""
    return Fact("admin_ok", http_ok_cmd(url), lambda t, rc: rc == 0)


# --- dashboard ---------------------------------------------------------------------------

def status_code_cmd(url: str, *extra: str) -> str:
    """curl printing only the HTTP status of ``url``."""
    return join(["curl", "-sS", "-o", "/dev/null", "-m", "5", "-w", "%{http_code}", *extra, url])


def dashboard_code_fact(url: str) -> Fact:
    """The dashboard's HTTP status without credentials (401 once its basic auth is on)."""
    return Fact("dash_code", status_code_cmd(url), lambda t, rc: t.strip())


def auth_status_cmd(url: str) -> str:
    """:func:`status_code_cmd` with curl's config, holding the credentials, read from stdin."""
    return status_code_cmd(url, "-K", "-")


def curl_user_config(user: str, password: str) -> str:
    """curl config (stdin of :func:`auth_status_cmd`) with ``user:password``; backslashes and
    double quotes escaped, as curl unescapes them inside a quoted value."""
    value = f"{user}:{password}".replace("\\", "\\\\").replace('"', '\\"')
    return f'user = "{value}"\n'


def split_response(text: str) -> tuple[int, dict | None]:
    body, _, code = text.rstrip("\n").rpartition("\n")
    try:
        status = int(code)
    except ValueError:
        return 0, None
    try:
        return status, json.loads(body) if body.strip() else None
    except json.JSONDecodeError:
        return status, None


def service_wanted(url: str) -> dict:
    u = urllib.parse.urlsplit(url)
    return {"protocol": u.scheme, "host": u.hostname, "port": u.port or (443 if u.scheme == "https" else 80),
            "path": u.path or None}


def service_differs(current: dict | None, url: str) -> str:
    if current is None:
        return "absent"
    want = service_wanted(url)
    diff = [k for k, v in want.items() if current.get(k) != v]
    return f"{', '.join(diff)} differ" if diff else ""


def route_differs(current: dict | None, service: str, paths: list[str]) -> str:
    if current is None:
        return "absent"
    svc = (current.get("service") or {}).get("name")
    if svc is not None and svc != service:
        return f"belongs to service {svc}"
    if sorted(current.get("paths") or []) != sorted(paths):
        return f"paths {current.get('paths')}"
    return ""


# --- backup and restore of Kong's Postgres --------------------------------------------------------

DUMP_DONE = b"-- PostgreSQL database dump complete"  # pg_dump's last comment when it finished
# inside kong-database as the database's own user over the local socket (trusted there, as in
# the official image): no password travels
_PSQL_USER = ["-U", "kong", "-d", "kong"]


def dump_cmd() -> str:
    """Kong's database as plain SQL (DROP ... IF EXISTS first, no owners or grants: it restores
    into a database of another owner too), gzip'ed without a time stamp, brought back checked."""
    from .backupfile import fetch_cmd

    pg_dump = join(["docker", "exec", DB, "pg_dump", *_PSQL_USER, "--clean", "--if-exists", "--no-owner",
                    "--no-privileges"])
    # a pg_dump that fails midway leaves no DUMP_DONE line: the caller refuses such a dump
    return fetch_cmd(f"{pg_dump} | gzip -c -n")


def restore_cmd() -> str:
    """Feed a dump (stdin) to psql in one transaction that stops at the first error: all or nothing."""
    return join(["docker", "exec", "-i", DB, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction",
                 "-o", "/dev/null", *_PSQL_USER])


def container_cmd(action: str) -> str:
    """``docker stop|start kong``: the gateway is stopped while its database is replaced (Kong
    caches what it read; a restart reads the restored rows)."""
    return join(["docker", action, KONG])


def dump_problem(sql: bytes) -> str:
    """Why ``sql`` is not a whole pg_dump ('' when it is)."""
    if DUMP_DONE not in sql[-600:]:  # newer pg_dump ends with `\unrestrict KEY` after it
        return "it does not end with pg_dump's '-- PostgreSQL database dump complete' (cut short or not a dump)"
    return ""


def dump_body(sql: bytes) -> bytes:
    r"""The dump without the per-run lines (pg_dump >= 15.14 fences a dump with `\restrict KEY` /
    `\unrestrict KEY`, a random key each run): equal bodies, equal databases."""
    return b"\n".join(ln for ln in sql.split(b"\n") if not ln.startswith((b"\\restrict ", b"\\unrestrict ")))


def dump_names(sql: bytes, table: str) -> list[str]:
    """The ``name`` column of every row of ``public.TABLE`` in a plain dump (its COPY block)."""
    out: list[str] = []
    rows = iter(sql.decode("utf-8", "replace").split("\n"))
    for line in rows:
        m = re.match(rf"^COPY public\.{re.escape(table)} \((.*)\) FROM stdin;$", line)
        if not m:
            continue
        cols = [c.strip().strip('"') for c in m.group(1).split(",")]
        if "name" not in cols:
            return out
        i = cols.index("name")
        for row in rows:
            if row == "\\.":
                break
            value = row.split("\t")[i]
            if value != "\\N":
                out.append(value)
        break
    return out


def name_ok(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}", name or ""))


__all__ = ["quote"]
