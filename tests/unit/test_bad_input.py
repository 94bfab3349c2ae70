"""Bad input, through the real `inv` command line: one clear line naming the problem, a non-zero
exit, no traceback, and no host touched. Every host named here is 127.0.0.1 on port 9 (nothing
listens there): the refusals must come before any connection, and a regression cannot reach
anything but this machine."""

import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GOOD = "MANAGERS=127.0.0.1:9\nSSH_CONNECT_TIMEOUT=2\n"

CASES = [
    # (id, hosts.env text, argv, expected text)
    ("no-equals", "MANAGERS 127.0.0.1\n", ["docker.install"], "line 1: cannot parse"),
    ("unknown-key", GOOD + "MANAGRES=127.0.0.1\n", ["docker.install"], "line 3: unknown key MANAGRES"),
    ("open-quote", 'MANAGERS="127.0.0.1\n', ["docker.install"], "line 1: cannot parse"),
    ("key-only", GOOD + "WORKERS\n", ["docker.install"], "WORKERS has no '=value'"),
    ("port-letters", GOOD + "SSH_PORT=22x\n", ["docker.install"], "SSH_PORT: port '22x'"),
    ("port-too-big", GOOD + "SSH_PORT=70000\n", ["docker.install"], "port '70000'"),
    ("host-port-zero", "MANAGERS=127.0.0.1:0\n", ["docker.install"], "port '0'"),
    ("host-syntax", "MANAGERS=-bad\n", ["docker.install"], "'-bad' is not [user@]host[:port]"),
    ("user-syntax", "MANAGERS=Root User@127.0.0.1\n", ["docker.install"], "bad user name"),
    ("timeout-word", GOOD + "SSH_CONNECT_TIMEOUT=soon\n", ["docker.install"], "not a whole number"),
    ("method-choice", GOOD + "DOCKER_INSTALL_METHOD=snap\n", ["docker.install"], "'snap' is not one of script, distro"),
    ("subnet-setting", GOOD + "NETWORK_SUBNET=10.0.0.0/40\n", ["net.create"], "not a CIDR"),
    ("missing-key-file", GOOD + "SSH_KEY=/nonexistent/id_ed25519\n", ["docker.install"], "SSH_KEY /nonexistent/id_ed25519 does not exist"),
    ("key-is-a-folder", GOOD + "SSH_KEY=/etc\n", ["docker.install"], "SSH_KEY /etc does not exist or is not readable"),
    ("key-not-a-key", GOOD + "SSH_KEY=/etc/os-release\n", ["docker.install"], "SSH_KEY /etc/os-release is not a private key file"),
    ("labels", GOOD + "NODE_LABELS=no-colon\n", ["swarm.init"], "NODE_LABELS entry 'no-colon' is not host:key=value"),
    ("publish-mode", GOOD + "STACK_PUBLISH_MODE=mesh\n", ["stack.deploy", "demo"], "'mesh' is not one of ingress, host"),
    ("lock-wait", GOOD + "LOCK_WAIT=-1\n", ["docker.install"], "not a whole number"),
    ("mirror-setting", GOOD + "DOCKER_MIRRORS=ftp://mirror\n", ["docker.mirrors"], "'ftp://mirror' is not an http(s)"),
    ("method-arg", GOOD, ["docker.install", "--method", "pip"], "--method 'pip' is not one of"),
    ("mirror-arg", GOOD, ["docker.mirrors", "--mirrors", "registry.lab:5001"], "is not an http(s)://host[:port] URL"),
    # dockerd's own mirror rules (it would refuse to start with these in daemon.json)
    ("mirror-path", GOOD + "DOCKER_MIRRORS=https://m.lab/v2\n", ["docker.mirrors"], "'https://m.lab/v2' has a path (/v2)"),
    ("mirror-query", GOOD, ["docker.mirrors", "--mirrors", "https://m.lab/?a=b"], "'https://m.lab/?a=b' has a query"),
    ("mirror-fragment", GOOD, ["docker.mirrors", "--mirrors", "https://m.lab/#x"], "'https://m.lab/#x' has a query or fragment"),
    ("mirror-port", GOOD, ["docker.mirrors", "--mirrors", "https://m.lab:99999"], "port '99999' is not a number"),
    ("mirror-userinfo", GOOD + "DOCKER_MIRRORS=https://ops:s3cret-canary@m.lab\n", ["docker.mirrors"],
     "'https://xxxxx@m.lab' has a user name or password"),
    ("mirror-second-of-two", GOOD, ["docker.mirrors", "--mirrors", "https://a.lab,https://b.lab/v2"], "'https://b.lab/v2'"),
    # a group swarmbook does not know is an unknown key (the groups are fixed: MANAGERS, WORKERS, ...)
    ("unknown-group", GOOD + "DATABASES=127.0.0.1\n", ["docker.install"], "line 3: unknown key DATABASES"),
    ("insecure-no-bind", GOOD, ["docker.tcp", "--insecure"], "--insecure needs --bind"),
    ("bind-not-ip", GOOD, ["docker.tcp", "--bind", "everywhere"], "--bind 'everywhere' is not an IP address"),
    ("tcp-port", GOOD, ["docker.tcp", "--port", "99999"], "port '99999'"),
    ("sshd-port", GOOD, ["sshd.move-port", "--port", "0"], "port '0'"),
    ("cidr-33", GOOD, ["net.create", "--subnet", "10.0.0.0/33"], "not a CIDR"),
    ("cidr-no-prefix", GOOD, ["net.create", "--subnet", "10.7.0.0"], "has no prefix length"),
    ("ingress-no-subnet", GOOD, ["net.recreate-ingress", "--yes"], "needs --subnet"),
    ("ingress-no-yes", GOOD, ["net.recreate-ingress", "--subnet", "192.168.0.0/16"], "rerun with --yes"),
    # Invoke's own parser refuses a missing positional (its exit code is 1)
    ("migrate-no-service", GOOD, ["net.migrate", "--to", "a", "--from", "b"], "required positional arguments: 'service'"),
    ("migrate-same", GOOD, ["net.migrate", "svc", "--to", "a", "--from", "a"], "name the same network"),
    ("no-stack", GOOD, ["stack.deploy", "nosuchstack"], "no stack file"),
    ("no-app-env", GOOD, ["stack.deploy", "demo", "--app-env", "/nonexistent/app.env"], "app .env file /nonexistent/app.env not found"),
    ("stack-timeout", GOOD, ["stack.deploy", "demo", "--timeout", "0"], "--timeout must be a positive"),
    ("no-dockerfile", GOOD + "REGISTRY=registry.lab:5000\n", ["image.build-push", "--context", "/"], "has no Dockerfile"),
    ("no-registry", GOOD, ["registry.login"], "REGISTRY is empty"),
    ("no-password", GOOD + "REGISTRY=r:5000\nREGISTRY_USER=u\n", ["registry.login"], "REGISTRY_PASSWORD is empty"),
    ("no-hosts-file", None, ["docker.install"], "not found (copy hosts.env.example"),
    ("prune-no-yes", GOOD, ["swarm.init", "--prune"], "--prune removes every node hosts.env does not list: add --yes"),
    ("init-timeout", GOOD, ["swarm.init", "--timeout", "0"], "--timeout must be a positive"),
    ("drain-timeout", GOOD, ["node.drain", "h2", "--timeout", "0"], "--timeout must be a positive"),
]


def run_inv(tmp_path, env_text, argv, extra_env=None):
    env_file = tmp_path / "hosts.env"
    if env_text is not None:
        env_file.write_text(env_text)
        os.chmod(env_file, 0o600)
    env = {**os.environ, "SWARMBOOK_ENV": str(env_file), **(extra_env or {})}
    env.pop("REGISTRY_PASSWORD", None)
    return subprocess.run(["inv", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(tmp_path, case):
    _, text, argv, expected = case
    p = run_inv(tmp_path, text, argv)
    assert p.returncode == (1 if "positional" in expected else 2), (p.returncode, p.stdout, p.stderr)
    assert expected in p.stderr, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    assert len(lines) == 1, p.stderr
    assert p.stdout == ""  # nothing ran: no step lines, no recap
    assert "s3cret-canary" not in p.stderr


@pytest.mark.parametrize("how", ["--json", "SWARMBOOK_JSON=1"])
def test_bad_input_with_json_is_one_json_object(tmp_path, how):
    argv = ["docker.mirrors", "--mirrors", "https://m.lab/v2"] + (["--json"] if how == "--json" else [])
    p = run_inv(tmp_path, GOOD, argv, {"SWARMBOOK_JSON": "1"} if how != "--json" else None)
    assert p.returncode == 2 and p.stderr == "", p.stderr
    obj, = [json.loads(line) for line in p.stdout.splitlines()]
    assert obj["event"] == "error" and "'https://m.lab/v2' has a path" in obj["error"]


def test_a_public_key_given_as_ssh_key_is_refused_before_any_connection(tmp_path):
    pub = tmp_path / "id_ed25519.pub"
    pub.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0fake user@laptop\n")
    p = run_inv(tmp_path, f"MANAGERS=192.0.2.1\nSSH_KEY={pub}\n", ["docker.install"])
    assert p.returncode == 2 and p.stdout == "", (p.stdout, p.stderr)
    assert p.stderr.strip().endswith(f"SSH_KEY {pub} is a public key: use the private key file (without .pub)")
    assert len(p.stderr.strip().splitlines()) == 1


def test_bootstrap_all_refusal_with_json_is_one_json_object(tmp_path):
    p = run_inv(tmp_path, GOOD + "DOCKER_MIRRORS=https://m.lab/?x=1\n", ["bootstrap-all", "--json"])
    assert p.returncode == 2 and p.stderr == "", p.stderr
    obj, = [json.loads(line) for line in p.stdout.splitlines()]
    assert obj["event"] == "error" and "query" in obj["error"], obj
    text = run_inv(tmp_path, GOOD + "DOCKER_MIRRORS=https://m.lab/?x=1\n", ["bootstrap-all"])
    assert text.returncode == 2 and text.stdout == "" and len(text.stderr.splitlines()) == 1, text.stderr


def test_bad_stack_template_is_refused(tmp_path):
    stacks = tmp_path / "stacks" / "app"
    stacks.mkdir(parents=True)
    (stacks / "deploy.yml").write_text("services:\n  a:\n    image: ${NOPE}\n")
    (stacks / "app.env").write_text("A=1\n")
    p = run_inv(tmp_path, GOOD + f"STACKS_PATH={tmp_path / 'stacks'}\n", ["stack.deploy", "app"])
    assert p.returncode == 2 and "unknown variable ${NOPE}" in p.stderr
    (stacks / "deploy.yml").write_text("services: [\n")
    p = run_inv(tmp_path, GOOD + f"STACKS_PATH={tmp_path / 'stacks'}\n", ["stack.deploy", "app"])
    assert p.returncode == 2 and "not valid YAML" in p.stderr and "Traceback" not in p.stderr


def test_unknown_task_is_refused_naming_it(tmp_path):
    p = run_inv(tmp_path, GOOD, ["docker.nope"])
    assert p.returncode != 0 and "docker.nope" in p.stderr and "Traceback" not in p.stderr


def test_unreachable_host_fails_fast_naming_it(tmp_path):
    """The host's own failure line (--no-lock: by default an unreachable only manager stops the
    run at the lock, test_lock_cli.py)."""
    p = run_inv(tmp_path, GOOD, ["docker.install", "--json", "--no-lock"])
    assert p.returncode == 1
    assert "cannot connect to root@127.0.0.1:9" in p.stdout and "swarmbook: docker.install failed on 127.0.0.1" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.fixture
def silent_sshd():
    """A loopback TCP port that accepts connections and never sends an SSH banner (a host
    whose sshd hangs, or a firewall that accepts and black-holes)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # keep it open, say nothing
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield server.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    server.close()


def test_host_that_never_answers_ssh_fails_naming_it(tmp_path, silent_sshd):
    """The TCP connect succeeds, the SSH banner never comes: SSH_CONNECT_TIMEOUT must bound the
    wait (the subprocess timeout, 60 s, only turns a hang into a failure; no time is asserted)."""
    p = run_inv(tmp_path, f"MANAGERS=127.0.0.1:{silent_sshd}\nSSH_CONNECT_TIMEOUT=1\n", ["docker.install", "--no-lock"])
    assert p.returncode == 1, (p.stdout, p.stderr)
    steps = [ln for ln in p.stdout.splitlines() if " | " in ln]  # step lines (not the recap)
    assert len(steps) == 1 and steps[0].startswith("127.0.0.1 "), p.stdout
    assert f"failed       docker.install | connect: cannot connect to root@127.0.0.1:{silent_sshd}" in steps[0]
    assert "swarmbook: docker.install failed on 127.0.0.1\n" in p.stderr


@pytest.mark.parametrize("no_lock", [False, True])
def test_host_that_never_answers_ssh_is_one_clear_line_without_traceback(tmp_path, silent_sshd, no_lock):
    p = run_inv(tmp_path, f"MANAGERS=127.0.0.1:{silent_sshd}\nSSH_CONNECT_TIMEOUT=1\n",
                ["docker.install"] + (["--no-lock"] if no_lock else []))
    assert "Traceback" not in p.stdout + p.stderr
    assert "No existing session" not in p.stdout + p.stderr  # paramiko's words for "no handshake yet"
    errors = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("warning:")]
    if no_lock:
        assert errors == ["swarmbook: docker.install failed on 127.0.0.1"], p.stderr
        assert "no SSH answer" in p.stdout, p.stdout
    else:  # the only manager holds the lock: the run stops there, naming it and why
        assert p.returncode == 3 and p.stdout == "", (p.stdout, p.stderr)
        assert len(errors) == 1 and errors[0].startswith("swarmbook: error: cluster lock not taken"), p.stderr
        assert f"root@127.0.0.1:{silent_sshd}: no SSH answer" in errors[0], p.stderr
