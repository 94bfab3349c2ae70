"""Bad input, through the real `inv` command line: one clear line naming the problem, a non-zero
exit, no traceback, and no host touched. Every host named here is 127.0.0.1 on port 9 (nothing
listens there): the refusals must come before any connection, and a regression cannot reach
anything but this machine."""

import os
import subprocess
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
    ("labels", GOOD + "NODE_LABELS=no-colon\n", ["swarm.init"], "NODE_LABELS entry 'no-colon' is not host:key=value"),
    ("publish-mode", GOOD + "STACK_PUBLISH_MODE=mesh\n", ["stack.deploy", "demo"], "'mesh' is not one of ingress, host"),
    ("lock-wait", GOOD + "LOCK_WAIT=-1\n", ["docker.install"], "not a whole number"),
    ("mirror-setting", GOOD + "DOCKER_MIRRORS=ftp://mirror\n", ["docker.mirrors"], "'ftp://mirror' is not an http(s)"),
    ("method-arg", GOOD, ["docker.install", "--method", "pip"], "--method 'pip' is not one of"),
    ("mirror-arg", GOOD, ["docker.mirrors", "--mirrors", "registry.lab:5001"], "is not an http(s)://host[:port] URL"),
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


def test_unknown_task_and_group(tmp_path):
    p = run_inv(tmp_path, GOOD, ["docker.nope"])
    assert p.returncode != 0 and "docker.nope" in p.stderr and "Traceback" not in p.stderr


def test_unreachable_host_fails_fast_naming_it(tmp_path):
    p = run_inv(tmp_path, GOOD, ["docker.install", "--json"])
    assert p.returncode == 1
    assert "cannot connect to root@127.0.0.1:9" in p.stdout and "swarmbook: docker.install failed on 127.0.0.1" in p.stderr
    assert "Traceback" not in p.stderr
