"""The lock before any change, through the real `inv` (issue 13 item 4): the only manager does not
answer (127.0.0.1 on a port where nothing listens), a worker does (a recording SSH server on
127.0.0.1, named `localhost` so it is another host): the run stops with one line and exit code 3,
and the worker receives no command; `--no-lock` goes on, with a warning line."""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from .sshserver import SSHServer, keygen, load

REPO = Path(__file__).resolve().parents[2]


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    """(hosts.env path, the worker's recording server, the manager's port)."""
    key = keygen(tmp_path / "id_ed25519")
    with SSHServer([load(keygen(tmp_path / "host_key"))]) as worker:
        manager = unused_port()
        env = tmp_path / "hosts.env"
        env.write_text(f"MANAGERS=127.0.0.1:{manager}\nWORKERS=localhost:{worker.port}\nSSH_KEY={key}\n"
                       f"SSH_KNOWN_HOSTS={tmp_path / 'known_hosts'}\nSSH_CONNECT_TIMEOUT=2\nLOCK_WAIT=0\n")
        env.chmod(0o600)
        yield env, worker, manager


def inv(env_file, *argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMBOOK_")}
    return subprocess.run(["inv", *argv], cwd=REPO, env={**env, "SWARMBOOK_ENV": str(env_file)},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("task", ["docker.install", "bootstrap-all"])
def test_no_manager_answering_stops_a_changing_run_with_one_line_and_changes_nothing(cluster, task):
    env, worker, manager = cluster
    p = inv(env, task)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert p.stdout == ""  # no step line, no recap
    assert p.stderr.splitlines() == [
        f"swarmbook: error: cluster lock not taken, nothing changed: no manager answered (cannot connect to "
        f"root@127.0.0.1:{manager}: [Errno 111] Connection refused); rerun when one does, or with --no-lock to "
        "change the hosts without the lock"], p.stderr
    assert worker.seen.commands == []  # reached (its connection is opened ahead), and sent nothing


def test_with_json_the_stop_is_one_json_object(cluster):
    env, worker, _ = cluster
    p = inv(env, "docker.install", "--json")
    assert p.returncode == 3 and p.stderr == "", p.stderr
    obj, = [json.loads(line) for line in p.stdout.splitlines()]
    assert obj["event"] == "error" and obj["error"].startswith("cluster lock not taken, nothing changed"), obj
    assert worker.seen.commands == []


def test_no_lock_goes_on_unlocked_with_a_warning_line(cluster):
    env, worker, manager = cluster
    p = inv(env, "docker.install", "--no-lock")
    assert ("warning: --no-lock: running without the cluster lock; another operator's run may change these "
            "hosts at the same time") in p.stderr.splitlines(), p.stderr
    assert worker.seen.commands, "the worker got no command: the run did not go on"
    assert not any("swarmbook.lock" in c for c in worker.seen.commands)  # no lock taken anywhere
    assert f"cannot connect to root@127.0.0.1:{manager}" in p.stdout  # the manager fails in its own step
    assert p.returncode == 1, (p.stdout, p.stderr)


def test_check_mode_takes_no_lock_and_probes_the_hosts_that_answer(cluster):
    env, worker, _ = cluster
    p = inv(env, "docker.install", "--check")
    assert "cluster lock" not in p.stderr + p.stdout, p.stderr
    assert worker.seen.commands and not any("swarmbook.lock" in c for c in worker.seen.commands)
