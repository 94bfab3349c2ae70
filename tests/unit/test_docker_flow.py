"""Task flow for docker.*: given facts, exactly which commands are sent (scripted SSH pool)."""

import base64
import json
import re

import pytest

import tasks.docker as T
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import ABSENT, FakePool, make_run

install = T.install.body.__wrapped__
mirrors = T.mirrors.body.__wrapped__

DEBIAN = ('ID=debian\n', 0)
PRESENT = {"os": DEBIAN, "has:dockerd": ("/usr/sbin/dockerd", 0), "has:curl": ("/usr/bin/curl", 0),
           "unit:docker": ("ActiveState=active\nUnitFileState=enabled\n", 0), "groups:root": ("root", 0)}


def run_body(pool, body, *args, env="MANAGERS=h1\n", check=False, **kw):
    run, out = make_run(pool, env, check=check, task="docker.x")
    run.each(run.settings.group("managers"), lambda h: body(h, *args, **kw))
    return run, out.getvalue()


def test_install_is_a_no_op_with_one_round_trip_when_docker_runs():
    pool = FakePool(PRESENT)
    run, out = run_body(pool, install, method="distro")
    assert pool.changes() == [] and pool.commands_run == 1
    assert run.reporter.counts()["h1"]["changed"] == 0


def test_install_distro_installs_starts_and_verifies():
    pool = FakePool({**PRESENT, "has:dockerd": ("", 1),
                     "unit:docker": ("ActiveState=inactive\nUnitFileState=\n", 0)},
                    {r"apt-get install": Result("", "", 0), r"systemctl .*enable --now docker": Result("", "", 0),
                     r"docker version": Result("20.10.24\n", "", 0)})
    run, out = run_body(pool, install, method="distro")
    ch = pool.changes()
    assert "apt-get install -y -q --no-install-recommends docker.io" in ch[0]
    assert "systemctl enable --now docker" in ch[1]
    assert "engine 20.10.24" in out and run.failed() == []


def test_install_adds_non_root_user_to_docker_group_then_reconnects():
    """A new group membership applies only to new sessions: after usermod the engine must
    reconnect, and the check that docker answers runs in the new session."""
    pool = FakePool({**PRESENT, "groups:ops": ("ops sudo", 0)}, {r"usermod -aG docker ops": Result("", "", 0),
                                                                  r"docker version": Result("24.0\n", "", 0)})
    run, out = run_body(pool, install, env="MANAGERS=ops@h1\n", method="distro")
    assert pool.changes()[0] == "sudo -n sh -c 'usermod -aG docker ops'"
    assert pool.reconnects("h1") == 1
    (_, _, after), = [c for c in pool.connects if c[1]]
    assert "usermod" in pool.sent[after - 1][0]  # reconnected right after the group change
    (conn, _), = [(c, cmd) for c, cmd in pool.on if "docker version" in cmd]
    assert conn.fresh
    assert run.failed() == [] and run.reporter.counts()["h1"]["changed"] == 1


def test_install_user_already_in_docker_group_changes_nothing_and_keeps_the_session():
    pool = FakePool({**PRESENT, "groups:ops": ("ops sudo docker", 0)})
    run, out = run_body(pool, install, env="MANAGERS=ops@h1\n", method="distro")
    assert pool.changes() == [] and pool.commands_run == 1
    assert pool.reconnects() == 0
    assert run.reporter.counts()["h1"]["changed"] == 0 and run.failed() == []


def test_install_adds_curl_where_it_is_missing():
    """swarmbook reads the engine API with curl (and get.docker.com is fetched with it)."""
    pool = FakePool({**PRESENT, "has:curl": ("", 1)}, {r"apt-get install .*curl": Result("", "", 0)})
    run, out = run_body(pool, install, method="distro")
    assert len(pool.changes()) == 1 and "curl" in pool.changes()[0] and run.failed() == []
    pool = FakePool({**PRESENT, "has:curl": ("", 1), "os": ("ID=plan9\n", 0)})
    run, out = run_body(pool, install, method="distro")
    assert pool.changes() == [] and run.failed() == ["h1"] and "install curl first" in out


def test_install_check_mode_sends_no_change():
    pool = FakePool({**PRESENT, "has:dockerd": ("", 1)})
    run, out = run_body(pool, install, method="script", check=True)
    assert pool.changes() == []
    assert "would change" in out and "get.docker.com" in out


def test_bad_method_is_refused_before_hosts():
    with pytest.raises(ConfigError, match="--method 'pip'"):
        T._check_method(make_run(FakePool())[0].settings, method="pip")


def test_mirrors_merge_keeps_other_keys_and_restarts_once():
    daemon = 'root root 644\n{"log-driver": "journald"}'
    pool = FakePool({"has:dockerd": ("/usr/bin/dockerd", 0), "daemon": (daemon, 0), "docker_info": ABSENT},
                    {r"dockerd --validate": Result("", "", 0),
                     r"docker info": Result('["https://m.lab:5001/"]', "", 0)})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    (cmd, stdin), = [(c, s) for c, s in pool.sent if "dockerd --validate" in c]
    b64 = re.search(r"printf '%s' (\S+) \| base64 -d > /etc/docker/daemon.json", cmd).group(1)
    assert json.loads(base64.b64decode(b64)) == {"log-driver": "journald", "registry-mirrors": ["https://m.lab:5001"]}
    assert cmd.count("systemctl restart docker") == 2  # once, plus once more only on rollback
    assert run.failed() == []


def test_mirrors_no_change_when_already_set():
    daemon = 'root root 644\n{\n  "registry-mirrors": [\n    "https://m.lab:5001"\n  ]\n}\n'
    info = json.dumps({"RegistryConfig": {"Mirrors": ["https://m.lab:5001/"]}})  # the engine adds the slash
    pool = FakePool({"has:dockerd": ("/usr/bin/dockerd", 0), "daemon": (daemon, 0), "docker_info": (info, 0)})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    assert pool.changes() == [] and pool.commands_run == 1


def test_mirrors_written_but_not_running_restart_the_engine_once():
    daemon = 'root root 644\n{\n  "registry-mirrors": [\n    "https://m.lab:5001"\n  ]\n}\n'
    info = json.dumps({"RegistryConfig": {"Mirrors": []}})  # e.g. a run killed before the restart
    pool = FakePool({"has:dockerd": ("/usr/bin/dockerd", 0), "daemon": (daemon, 0), "docker_info": (info, 0)},
                    {r"systemctl restart docker": Result("", "", 0)})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    assert len(pool.changes()) == 1 and "not applied yet" in out


def test_mirrors_refuse_to_touch_unreadable_daemon_json():
    pool = FakePool({"has:dockerd": ("/usr/bin/dockerd", 0), "daemon": ("root root 644\n{broken", 0),
                     "docker_info": ABSENT})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    assert pool.changes() == [] and run.failed() == ["h1"]
    assert "not valid JSON" in out


def test_bad_mirror_refused_before_hosts():
    with pytest.raises(ConfigError, match="not an http"):
        T._wanted_mirrors(make_run(FakePool())[0].settings, mirrors="ftp://x")
