#!/usr/bin/env python3
"""STAND-IN for the lab only (no public images are reachable there). NOT GitLab, NOT Kong.

One small program baked into the swarmbook-standin/* images:

  standin.py gitlab      GitLab CE stand-in: writes /etc/gitlab/gitlab.rb (commented template),
                         /etc/gitlab/gitlab-secrets.json (random keys, 0600) and
                         /etc/gitlab/initial_root_password once, answers GET /-/health on
                         :80 after GITLAB_STANDIN_BOOT seconds (default 8).
  kong migrations bootstrap|up|finish|list
                         Kong CLI stand-in: real SQL against the real Postgres via psql
                         (KONG_PG_HOST/USER/PASSWORD/DATABASE); migrations named in
                         KONG_STANDIN_MIGRATIONS. `list` exits 3 (needs bootstrap), 5 (new
                         migrations: run up), 4 (pending: run finish) or 0 (up to date).
  kong [start]           proxy :8000 (404 "no Route matched" / names the matched service) and
                         admin API :8001: GET /, GET|PUT|DELETE /services/NAME,
                         GET|PUT|DELETE /routes/NAME, GET /services/NAME/routes,
                         GET|PUT /services/NAME/routes/ROUTE; rows in Postgres. No plugins,
                         no real proxying, no clustering, no TLS listeners.

The kong-dashboard stand-in is kong-dashboard.js beside this file (node, like the real image).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

# --- GitLab ------------------------------------------------------------------------------

GITLAB_RB = """\
## GitLab configuration settings (swarmbook lab STAND-IN: only the lines below exist)
# external_url 'GENERATED_EXTERNAL_URL'

### Email Settings
# gitlab_rails['smtp_enable'] = true
# gitlab_rails['smtp_address'] = "smtp.server"
# gitlab_rails['smtp_port'] = 465
# gitlab_rails['smtp_user_name'] = "smtp user"
# gitlab_rails['smtp_password'] = "smtp password"
# gitlab_rails['smtp_domain'] = "example.com"
# gitlab_rails['smtp_authentication'] = "login"
# gitlab_rails['smtp_enable_starttls_auto'] = true
# gitlab_rails['smtp_tls'] = false
# gitlab_rails['gitlab_email_from'] = 'example@example.com'
"""


def gitlab() -> None:
    os.makedirs("/etc/gitlab", exist_ok=True)
    os.makedirs("/var/log/gitlab", exist_ok=True)
    os.makedirs("/var/opt/gitlab", exist_ok=True)
    if not os.path.exists("/etc/gitlab/gitlab.rb"):
        with open("/etc/gitlab/gitlab.rb", "w") as f:
            f.write(GITLAB_RB)
        os.chmod("/etc/gitlab/gitlab.rb", 0o600)
    secrets_json = "/etc/gitlab/gitlab-secrets.json"  # GitLab writes it at its first reconfigure
    if not os.path.exists(secrets_json):
        fd = os.open(secrets_json, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"gitlab_rails": {"secret_key_base": secrets.token_hex(64), "db_key_base": secrets.token_hex(64),
                                        "otp_key_base": secrets.token_hex(64)},
                       "swarmbook_standin": True}, f, indent=2)
    pw = "/etc/gitlab/initial_root_password"
    if not os.path.exists("/var/opt/gitlab/.root-password-made"):
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# WARNING: stand-in of GitLab's file (swarmbook lab)\n\n"
                    f"Password: {secrets.token_urlsafe(18)}\n\n"
                    "# NOTE: This file will be automatically deleted in the first reconfigure run after 24 hours.\n")
        open("/var/opt/gitlab/.root-password-made", "w").close()
    boot = float(os.environ.get("GITLAB_STANDIN_BOOT", "8"))
    ready_at = time.monotonic() + boot

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/-/health") and time.monotonic() >= ready_at:
                self._send(200, "GitLab OK")
            elif self.path.startswith("/-/health"):
                self._send(503, "starting")
            else:
                self._send(200, "swarmbook lab GitLab stand-in\n")

        def _send(self, code, text):
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    ThreadingHTTPServer(("0.0.0.0", 80), H).serve_forever()


# --- Kong: SQL through the real psql -------------------------------------------------------

def psql(sql: str, *, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PGPASSWORD": os.environ.get("KONG_PG_PASSWORD", "")}
    argv = ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
            "-h", os.environ.get("KONG_PG_HOST", "kong-database"),
            "-p", os.environ.get("KONG_PG_PORT", "5432"),
            "-U", os.environ.get("KONG_PG_USER", "kong"),
            "-d", os.environ.get("KONG_PG_DATABASE", "kong"), "-c", sql]
    p = subprocess.run(argv, env=env, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"Error: psql: {p.stderr.strip()}")
    return p


def lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def wanted_migrations() -> list[str]:
    return os.environ.get("KONG_STANDIN_MIGRATIONS", "000_base").split()


def migration_state() -> tuple[bool, list[str], list[str]]:
    """(bootstrapped, executed, pending)."""
    has = psql("SELECT to_regclass('public.schema_meta') IS NOT NULL").stdout.strip() == "t"
    if not has:
        return False, [], []
    rows = psql("SELECT name, state FROM schema_meta ORDER BY name").stdout.split()
    executed = [r.split("|")[0] for r in rows if r.endswith("|executed")]
    pending = [r.split("|")[0] for r in rows if r.endswith("|pending")]
    return True, executed, pending


def migrations(cmd: str) -> int:
    boot, executed, pending = migration_state()
    new = [m for m in wanted_migrations() if m not in executed and m not in pending]
    if cmd == "list":
        if not boot:
            print("Database needs bootstrapping or is older than Kong 1.0.")
            return 3
        print(f"Executed migrations: {' '.join(executed) or '-'}")
        if pending:
            print(f"Pending migrations: {' '.join(pending)}")
            return 4
        if new:
            print(f"New migrations available: {' '.join(new)}")
            return 5
        print("Database is up-to-date")
        return 0
    if cmd == "bootstrap":
        if boot:
            print("Database already bootstrapped")
            return 0
        psql("CREATE TABLE schema_meta (name text PRIMARY KEY, state text NOT NULL, at timestamptz DEFAULT now());"
             "CREATE TABLE services (name text PRIMARY KEY, protocol text, host text, port int, path text);"
             "CREATE TABLE routes (name text PRIMARY KEY, service text REFERENCES services(name) ON DELETE CASCADE,"
             " paths text);"
             + "".join(f"INSERT INTO schema_meta VALUES ({lit(m)}, 'executed');" for m in wanted_migrations()))
        print("Bootstrapping database...\nDatabase is up-to-date")
        return 0
    if not boot:
        print("Error: Database needs bootstrapping; run 'kong migrations bootstrap'", file=sys.stderr)
        return 1
    if cmd == "up":
        if not new:
            print("Database is already up-to-date")
            return 0
        psql("".join(f"INSERT INTO schema_meta VALUES ({lit(m)}, 'pending');" for m in new))
        print(f"{len(new)} migration(s) processed; run 'kong migrations finish'")
        return 0
    if cmd == "finish":
        if not pending:
            print("No pending migrations to finish")
            return 0
        psql("UPDATE schema_meta SET state = 'executed', at = now() WHERE state = 'pending'")
        print(f"{len(pending)} migration(s) finished")
        return 0
    print(f"Error: unknown migrations command {cmd}", file=sys.stderr)
    return 1


def _service_row(name: str) -> dict | None:
    out = psql(f"SELECT row_to_json(s) FROM services s WHERE name = {lit(name)}").stdout.strip()
    return json.loads(out) if out else None


def _route_row(name: str) -> dict | None:
    out = psql(f"SELECT row_to_json(r) FROM routes r WHERE name = {lit(name)}").stdout.strip()
    if not out:
        return None
    r = json.loads(out)
    return {"name": r["name"], "service": {"name": r["service"]}, "paths": json.loads(r["paths"])}


class Admin(BaseHTTPRequestHandler):
    def _json(self, code: int, data) -> None:
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode() if n else ""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(raw or "{}")
        return {k: v[-1] for k, v in urllib.parse.parse_qs(raw).items()}

    def _parts(self) -> list[str]:
        return [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(self.path).path.split("/") if p]

    def do_GET(self):
        p = self._parts()
        if not p:
            return self._json(200, {"version": "0.0.0-swarmbook-standin", "tagline": "Welcome to kong"})
        if len(p) == 2 and p[0] == "services":
            row = _service_row(p[1])
            return self._json(200, row) if row else self._json(404, {"message": "Not found"})
        if len(p) == 3 and p[0] == "services" and p[2] == "routes":
            names = psql(f"SELECT name FROM routes WHERE service = {lit(p[1])} ORDER BY name").stdout.split()
            return self._json(200, {"data": [_route_row(n) for n in names], "next": None})
        if len(p) == 2 and p[0] == "routes":
            row = _route_row(p[1])
            return self._json(200, row) if row else self._json(404, {"message": "Not found"})
        if len(p) == 4 and p[0] == "services" and p[2] == "routes":
            row = _route_row(p[3])
            ok = row and row["service"]["name"] == p[1]
            return self._json(200, row) if ok else self._json(404, {"message": "Not found"})
        return self._json(404, {"message": "Not found"})

    def do_PUT(self):
        p, body = self._parts(), self._body()
        if len(p) == 2 and p[0] == "services":
            u = urllib.parse.urlsplit(body.get("url", ""))
            if u.scheme not in ("http", "https") or not u.hostname:
                return self._json(400, {"message": "schema violation (url: missing host)"})
            port = u.port or (443 if u.scheme == "https" else 80)
            psql("INSERT INTO services VALUES ({0}, {1}, {2}, {3}, {4}) ON CONFLICT (name) DO UPDATE SET "
                 "protocol = EXCLUDED.protocol, host = EXCLUDED.host, port = EXCLUDED.port, path = EXCLUDED.path"
                 .format(lit(p[1]), lit(u.scheme), lit(u.hostname), int(port),
                         lit(u.path) if u.path else "NULL"))
            return self._json(200, _service_row(p[1]))
        if len(p) == 4 and p[0] == "services" and p[2] == "routes":  # nested: the service is implied
            p, body = ["routes", p[3]], {**body, "service": {"name": p[1]}}
        if len(p) == 2 and p[0] == "routes":
            service = (body.get("service") or {}).get("name") if isinstance(body.get("service"), dict) \
                else body.get("service.name")
            paths = body.get("paths") or []
            if not service or _service_row(service) is None:
                return self._json(400, {"message": "schema violation (service: missing or unknown)"})
            psql("INSERT INTO routes VALUES ({0}, {1}, {2}) ON CONFLICT (name) DO UPDATE SET "
                 "service = EXCLUDED.service, paths = EXCLUDED.paths"
                 .format(lit(p[1]), lit(service), lit(json.dumps(list(paths)))))
            return self._json(200, _route_row(p[1]))
        return self._json(405, {"message": "Method not allowed"})

    def do_DELETE(self):
        p = self._parts()
        if len(p) == 2 and p[0] in ("services", "routes"):
            psql(f"DELETE FROM {p[0]} WHERE name = {lit(p[1])}")
            self.send_response(204)
            self.end_headers()
            return None
        return self._json(405, {"message": "Method not allowed"})

    def log_message(self, *a):
        pass


class Proxy(Admin):
    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        rows = psql("SELECT name, service, paths FROM routes ORDER BY name").stdout.splitlines()
        for row in rows:
            name, service, paths = row.split("|", 2)
            if any(path.startswith(p) for p in json.loads(paths)):
                return self._json(200, {"route": name, "service": service, "standin": True})
        return self._json(404, {"message": "no Route matched with those values"})

    do_PUT = do_DELETE = do_GET  # type: ignore[assignment]


def kong_start() -> None:
    for i in range(60):  # the real Kong also refuses to start on a database it cannot use
        if psql("SELECT 1", check=False).returncode == 0:
            break
        time.sleep(1)
    boot, executed, pending = migration_state()
    if not boot:
        raise SystemExit("Error: database needs bootstrapping; run 'kong migrations bootstrap'")
    Thread(target=ThreadingHTTPServer(("0.0.0.0", 8000), Proxy).serve_forever, daemon=True).start()
    ThreadingHTTPServer(("0.0.0.0", 8001), Admin).serve_forever()


def main(argv: list[str]) -> int:
    # as PID 1 of its container a process gets no default SIGTERM action: end on `docker stop` at
    # once, as GitLab's runsvdir and Kong do, instead of being killed after the 10 s grace period
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    prog = os.path.basename(argv[0])
    args = argv[1:]
    if prog == "standin.py" and args:
        prog, args = args[0], args[1:]
    if prog == "gitlab":
        gitlab()
    elif prog == "kong" and args[:1] == ["migrations"] and len(args) >= 2:
        return migrations(args[1])
    elif prog == "kong" and args[:1] in ([], ["start"]):
        kong_start()
    else:
        print(f"stand-in: unsupported: {prog} {' '.join(args)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
