"""Bad input, tried as someone trying to break it: every case runs the real `inv` against a
hosts file whose hosts all point at a loopback listener that counts connections. Each must be
refused with one line naming what is wrong, exit code 2, nothing on stdout, no traceback, no
secret, no long value echoed back, and **no connection** (the listener counts 0).

Kinds (issue 13): secrets echoed in parse errors; hosts.env values used unchecked (SSH_USER,
REGISTRY, NETWORK_NAME, image names and tags, service names, SSHD_PORT); a stack name leaving
STACKS_PATH; duplicate hosts and WORKERS without MANAGERS; integer options; an env file that is
a folder or not UTF-8; 1 MB values. Plus more of each.
"""

import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CANARY = "s3cret-canary"
MEG = "x" * 1_000_000

# (id, hosts.env text ({port}: the counting listener), argv, text the one line must hold)
CASES = [
    # secrets never echoed, even when their line cannot be parsed
    ("secret-open-quote", f'MANAGERS=127.0.0.1:{{port}}\nREGISTRY_PASSWORD="{CANARY} and more\n',
     ["registry.login"], "cannot parse REGISTRY_PASSWORD=... (value not shown)"),
    ("secret-open-single-quote", f"MANAGERS=127.0.0.1:{{port}}\nexport KONG_PG_PASSWORD='{CANARY}\n",
     ["kong.bootstrap"], "cannot parse KONG_PG_PASSWORD=... (value not shown)"),
    ("secret-newline", f'MANAGERS=127.0.0.1:{{port}}\nMYSQL_ROOT_PASSWORD="{CANARY}\\nsecond"\n',
     ["mysql.up"], "MYSQL_ROOT_PASSWORD: the secret holds a control character"),
    ("unknown-key-open-quote", f'MANAGERS=127.0.0.1:{{port}}\nPASSWRD="{CANARY}\n',
     ["docker.install"], "cannot parse PASSWRD=... (value not shown)"),
    # SSH_USER: shell characters, NUL, upper case, too long
    ("ssh-user-shell", "MANAGERS=127.0.0.1:{port}\nSSH_USER=root;id\n", ["docker.install"], "SSH_USER: 'root;id' is not a user name"),
    ("ssh-user-subst", "MANAGERS=127.0.0.1:{port}\nSSH_USER=$(id)\n", ["docker.install"], "SSH_USER: '$(id)' is not a user name"),
    ("ssh-user-nul", "MANAGERS=127.0.0.1:{port}\nSSH_USER=ro\x00ot\n", ["docker.install"], "SSH_USER"),
    ("ssh-user-space", 'MANAGERS=127.0.0.1:{port}\nSSH_USER="ad min"\n', ["docker.install"], "is not a user name"),
    ("ssh-user-long", "MANAGERS=127.0.0.1:{port}\nSSH_USER=" + "a" * 40 + "\n", ["docker.install"], "is not a user name"),
    ("host-user-shell", "MANAGERS=r;id@127.0.0.1:{port}\n", ["docker.install"], "bad user name 'r;id'"),
    # hosts
    ("host-semicolon", "MANAGERS=127.0.0.1:{port};reboot\n", ["docker.install"], "port '{port};reboot'"),
    ("host-space", "MANAGERS=127.0.0.1:{port} 10.0.0.2\n", ["docker.install"], "not a number from 1 to 65535"),
    ("host-ipv6-open", "MANAGERS=[::1:{port}\n", ["docker.install"], "is not [user@]host[:port]"),
    ("host-dollar", "MANAGERS=$HOST\n", ["docker.install"], "'$HOST' is not [user@]host[:port]"),
    # REGISTRY: host[:port] only
    ("registry-scheme", "MANAGERS=127.0.0.1:{port}\nREGISTRY=https://r.lab\n", ["registry.login"], "REGISTRY: 'https://r.lab' is not a registry host[:port]"),
    ("registry-path", "MANAGERS=127.0.0.1:{port}\nREGISTRY=r.lab/team\n", ["registry.login"], "'r.lab/team' is not a registry host[:port]"),
    ("registry-port", "MANAGERS=127.0.0.1:{port}\nREGISTRY=r.lab:70000\n", ["registry.login"], "REGISTRY: port '70000'"),
    ("registry-space", 'MANAGERS=127.0.0.1:{port}\nREGISTRY="r lab"\n', ["registry.login"], "is not a registry host[:port]"),
    # names by Docker's rules
    ("network-space", 'MANAGERS=127.0.0.1:{port}\nNETWORK_NAME="my net"\n', ["net.create"], "NETWORK_NAME: 'my net' is not a valid swarm name"),
    ("network-slash", "MANAGERS=127.0.0.1:{port}\nNETWORK_NAME=a/../b\n", ["net.create"], "NETWORK_NAME: 'a/../b'"),
    ("network-dash-first", "MANAGERS=127.0.0.1:{port}\nNETWORK_NAME=-net\n", ["net.create"], "is not a valid swarm name"),
    ("network-64", "MANAGERS=127.0.0.1:{port}\nNETWORK_NAME=" + "n" * 64 + "\n", ["net.create"], "longer than 63 characters"),
    ("network-arg", "MANAGERS=127.0.0.1:{port}\n", ["net.create", "--name", "bad name"], "--name: 'bad name' is not a valid swarm name"),
    ("project-upper", "MANAGERS=127.0.0.1:{port}\nPROJECT=Demo\n", ["stack.deploy", "demo"], "PROJECT: 'Demo' is not a lower-case image name"),
    ("tag-colon", "MANAGERS=127.0.0.1:{port}\nIMAGE_TAG=v1:2\n", ["stack.deploy", "demo"], "IMAGE_TAG: 'v1:2' is not a valid image tag"),
    ("tag-dash-first", "MANAGERS=127.0.0.1:{port}\n", ["stack.deploy", "demo", "--tag", "-rc1"], "--tag: '-rc1' is not a valid image tag"),
    ("tag-129", "MANAGERS=127.0.0.1:{port}\n", ["stack.deploy", "demo", "--tag", "t" * 129], "is not a valid image tag"),
    ("build-tag", "MANAGERS=127.0.0.1:{port}\nBUILD=127.0.0.1:{port}\nREGISTRY=r.lab:5000\n",
     ["image.build-push", "--tag", "a b"], "--tag: 'a b' is not a valid image tag"),
    ("image-upper", "MANAGERS=127.0.0.1:{port}\nKONG_IMAGE=Kong:latest\n", ["kong.bootstrap"], "KONG_IMAGE: 'Kong:latest' is not an image reference"),
    ("image-space", 'MANAGERS=127.0.0.1:{port}\nMYSQL_IMAGE="mysql 5.7"\n', ["mysql.up"], "MYSQL_IMAGE: 'mysql 5.7' is not an image reference"),
    ("image-digest", "MANAGERS=127.0.0.1:{port}\nPORTAINER_IMAGE=portainer@sha256:abc\n", ["portainer.up"], "bad digest after @"),
    ("cron-image", "MANAGERS=127.0.0.1:{port}\n", ["cron.install", "job", "--schedule", "@daily", "--command", "true",
                                                  "--image", "Bad/Image"], "--image: 'Bad/Image' is not an image reference"),
    ("service-slash", "MANAGERS=127.0.0.1:{port}\n", ["net.migrate", "demo/x", "--to", "big", "--from", "small"], "SERVICE: 'demo/x' is not a valid swarm name"),
    ("migrate-to", "MANAGERS=127.0.0.1:{port}\n", ["net.migrate", "demo_demo", "--to", "big net", "--from", "small"], "--to: 'big net'"),
    ("refresh-services", "MANAGERS=127.0.0.1:{port}\nREGISTRY=r.lab:5000\nREGISTRY_USER=u\nREGISTRY_PASSWORD=" + CANARY + "\n",
     ["registry.refresh-auth", "--services", "demo_demo,a;b"], "--services: 'a;b' is not a valid swarm name"),
    # stack names never leave STACKS_PATH
    ("stack-dotdot", "MANAGERS=127.0.0.1:{port}\n", ["stack.deploy", "../other"], "stack name: '../other' is not a valid swarm name"),
    ("stack-absolute", "MANAGERS=127.0.0.1:{port}\n", ["stack.deploy", "/etc"], "stack name: '/etc'"),
    ("stack-dot", "MANAGERS=127.0.0.1:{port}\n", ["stack.update", "."], "stack name: '.'"),
    # ports
    ("sshd-port-word", "MANAGERS=127.0.0.1:{port}\nSSHD_PORT=ssh\n", ["bootstrap-all"], "SSHD_PORT: port 'ssh'"),
    ("sshd-port-zero", "MANAGERS=127.0.0.1:{port}\nGITLAB=127.0.0.1:{port}\nSSHD_PORT=0\n", ["sshd.move-port"], "SSHD_PORT: port '0'"),
    ("mysql-port", "MANAGERS=127.0.0.1:{port}\nMYSQL_PORT=3306x\n", ["mysql.up"], "MYSQL_PORT: port '3306x'"),
    # duplicates, identity, roles
    ("dup-in-group", "MANAGERS=127.0.0.1:{port},127.0.0.1:{port}\n", ["docker.install"], "root@127.0.0.1:{port} is listed twice"),
    ("dup-default-port", "SSH_PORT={port}\nMANAGERS=127.0.0.1,127.0.0.1:{port}\n", ["docker.install"], "listed twice"),
    ("manager-and-worker", "MANAGERS=127.0.0.1:{port}\nWORKERS=127.0.0.1:{port}\n", ["swarm.init"], "is in MANAGERS and WORKERS"),
    ("two-logins", "MANAGERS=127.0.0.1:{port}\nGITLAB=deploy@127.0.0.1:{port}\n", ["docker.install"], "one host, one login"),
    ("workers-alone", "WORKERS=127.0.0.1:{port}\n", ["docker.install"], "WORKERS without MANAGERS"),
    ("workers-not-target", "MANAGERS=127.0.0.1:{port}\n", ["swarm.init", "--workers", "10.9.9.9"],
     "--workers '10.9.9.9' is not one of the target hosts (127.0.0.1)"),
    # integer options and settings
    ("timeout-word", "MANAGERS=127.0.0.1:{port}\n", ["stack.deploy", "demo", "--timeout", "abc"], "--timeout: 'abc' is not a whole number"),
    ("timeout-float", "MANAGERS=127.0.0.1:{port}\n", ["mysql.up", "--timeout", "1.5"], "--timeout: '1.5' is not a whole number"),
    ("timeout-huge", "MANAGERS=127.0.0.1:{port}\nKONG=127.0.0.1:{port}\n", ["kong.bootstrap", "--timeout", "9" * 30], "is too large"),
    ("concurrent-word", "MANAGERS=127.0.0.1:{port}\nRUNNERS=127.0.0.1:{port}\n", ["runner.concurrency", "--concurrent", "five"], "--concurrent 'five' must be a whole number"),
    ("setting-huge", "MANAGERS=127.0.0.1:{port}\nSSH_CONNECT_TIMEOUT=" + "9" * 40 + "\n", ["docker.install"], "is too large"),
    # paths and other settings
    ("path-relative", "MANAGERS=127.0.0.1:{port}\nMYSQL_DATA=srv/mysql\n", ["mysql.up"], "MYSQL_DATA: 'srv/mysql' is not an absolute path"),
    ("path-dotdot", "MANAGERS=127.0.0.1:{port}\nCRON_DIR=/opt/../etc\n", ["cron.remove", "job"], "CRON_DIR: '/opt/../etc'"),
    ("path-shell", "MANAGERS=127.0.0.1:{port}\nSTACK_DIR=/opt/$(id)\n", ["stack.deploy", "demo"], "STACK_DIR: '/opt/$(id)'"),
    ("version-shell", "MANAGERS=127.0.0.1:{port}\nDOCKER_VERSION=28;reboot\n", ["docker.install"], "DOCKER_VERSION: '28;reboot' is not a version"),
    ("admin-bind", "MANAGERS=127.0.0.1:{port}\nKONG_ADMIN_BIND=localhost\n", ["kong.bootstrap"], "KONG_ADMIN_BIND: 'localhost' is not an IP address"),
    ("gitlab-hostname", "MANAGERS=127.0.0.1:{port}\nGITLAB=127.0.0.1:{port}\n", ["gitlab.up", "--hostname", "a;b"], "--hostname: 'a;b' is not a host name"),
    ("user-control", 'MANAGERS=127.0.0.1:{port}\nREGISTRY_USER="ops\\tteam"\n', ["registry.login"], "REGISTRY_USER: 'ops\\tteam' holds a control character"),
    ("runner-url-scheme", "MANAGERS=127.0.0.1:{port}\nRUNNERS=127.0.0.1:{port}\nRUNNER_URL=gitlab.lab\n", ["runner.register"],
     "RUNNER_URL: 'gitlab.lab' is not an http(s)://host[:port][/path] URL"),
    ("repo-url-quote", "MANAGERS=127.0.0.1:{port}\nRUNNER_REPO_URL=\"https://x/'; rm -rf /\"\n", ["runner.install"], "RUNNER_REPO_URL"),
    ("smtp-host", "MANAGERS=127.0.0.1:{port}\nGITLAB_SMTP_ADDRESS=smtp@qq\n", ["gitlab.smtp"], "GITLAB_SMTP_ADDRESS: 'smtp@qq' is not a host name"),
    # backups (issue 15): the folder, --keep, before any host
    ("backup-all-folder", "MANAGERS=127.0.0.1:{port}\n", ["backup.all", "--to", "/nonexistent-sb"],
     "backup.all: --to /nonexistent-sb is not a folder"),
    ("backup-all-keep", "MANAGERS=127.0.0.1:{port}\n", ["backup.all", "--to", "/tmp", "--keep", "0"], "--keep must be 1 or more"),
    ("backup-all-keep-word", "MANAGERS=127.0.0.1:{port}\n", ["backup.all", "--to", "/tmp", "--keep", "x"],
     "--keep: 'x' is not a whole number"),
    ("kong-backup-folder", "MANAGERS=127.0.0.1:{port}\nKONG=127.0.0.1:{port}\n", ["kong.backup", "--to", "/nonexistent-sb"],
     "kong.backup: --to /nonexistent-sb is not a folder"),
    ("kong-restore-missing", "MANAGERS=127.0.0.1:{port}\nKONG=127.0.0.1:{port}\n", ["kong.restore", "/nonexistent-sb.sql.gz", "--yes"],
     "backup /nonexistent-sb.sql.gz not found"),
    ("gitlab-backup-no-folder", "MANAGERS=127.0.0.1:{port}\nGITLAB=127.0.0.1:{port}\n", ["gitlab.backup"],
     "gitlab.backup: --to FOLDER is missing"),
    ("backup-cron-schedule", "MANAGERS=127.0.0.1:{port}\n", ["backup.cron", "--to", "/tmp", "--schedule", "61 * * * *"],
     "bad minute field"),
    # long values are cut, never echoed whole
    ("meg-network", "MANAGERS=127.0.0.1:{port}\nNETWORK_NAME=" + MEG + "\n", ["net.create"], "(1000000 characters)"),
    ("meg-key", "MANAGERS=127.0.0.1:{port}\n" + MEG + "=1\n", ["docker.install"], "unknown key"),
    ("meg-line", "MANAGERS=127.0.0.1:{port}\n" + MEG + "\n", ["docker.install"], "unknown key"),
    ("meg-unparsable", "MANAGERS=127.0.0.1:{port}\n'" + MEG + "\n", ["docker.install"], "cannot parse"),
    ("meg-arg", "MANAGERS=127.0.0.1:{port}\n", ["docker.tcp", "--bind", MEG[:100_000]], "(cut)"),
    ("meg-host", "MANAGERS=" + MEG + "\n", ["docker.install"], "(1000000 characters)"),
]


@pytest.fixture(scope="module")
def listener():
    """A loopback port that accepts and counts connections (and says nothing)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    count, stop = [0], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                server.accept()[0].close()
                count[0] += 1
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield server.getsockname()[1], count
    stop.set()
    t.join()
    server.close()


def run_inv(tmp_path, env: str | bytes | None, argv, port):
    env_file = tmp_path / "hosts.env"
    if isinstance(env, bytes):
        env_file.write_bytes(env)
    elif env == "FOLDER":
        env_file.mkdir()
    elif env is not None:
        env_file.write_text(env.replace("{port}", str(port)))
    if env_file.is_file():
        os.chmod(env_file, 0o600)
    environ = {k: v for k, v in os.environ.items() if not k.endswith(("PASSWORD", "TOKEN", "USERS"))}
    environ.update(SWARMBOOK_ENV=str(env_file), SSH_KNOWN_HOSTS=str(tmp_path / "known_hosts"))
    return subprocess.run(["inv", *argv], cwd=REPO, env=environ, capture_output=True, text=True, timeout=120)


def assert_refused(p, expected: str, count: list, before: int):
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1, p.stderr[-2000:]
    assert expected in lines[0], lines[0][:1000]
    assert p.stdout == ""
    assert "Traceback" not in p.stderr
    assert CANARY not in p.stderr
    assert len(p.stderr) < 700, len(p.stderr)  # nothing long echoed back
    assert count[0] == before, "a connection was made before the refusal"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_before_any_connection(tmp_path, listener, case):
    port, count = listener
    _, env, argv, expected = case
    before = count[0]
    assert_refused(run_inv(tmp_path, env, argv, port), expected.replace("{port}", str(port)), count, before)


@pytest.mark.parametrize("env, expected", [
    ("FOLDER", "is not a file"),
    (b"MANAGERS=127.0.0.1\nPROJECT=caf\xe9\n", "line 2: not UTF-8 text (byte 0xe9)"),
    (b"\xff\xfeM\x00A\x00", "line 1: not UTF-8 text (byte 0xff)"),
])
def test_hosts_file_that_is_not_text_is_refused(tmp_path, listener, env, expected):
    port, count = listener
    before = count[0]
    assert_refused(run_inv(tmp_path, env, ["docker.install"], port), expected, count, before)


def test_the_counting_listener_counts(tmp_path, listener):
    """The listener sees a run that is allowed to connect (so a 0 above means something)."""
    port, count = listener
    before = count[0]
    p = run_inv(tmp_path, f"MANAGERS=127.0.0.1:{port}\nSSH_CONNECT_TIMEOUT=1\n", ["docker.install", "--check"], port)
    assert p.returncode == 1 and count[0] > before, (p.stdout, p.stderr)


def test_a_byte_order_mark_is_not_part_of_the_first_key(tmp_path, listener):
    port, count = listener
    p = run_inv(tmp_path, f"\ufeffMANAGERS=127.0.0.1:{port}\nPROJECT=Bad\n".encode(), ["docker.install"], port)
    assert "line 2: PROJECT" in p.stderr, p.stderr  # line 1 parsed: MANAGERS, not '\ufeffMANAGERS'
