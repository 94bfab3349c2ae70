"""Task flow for docker.*: given facts, exactly which commands are sent (scripted SSH pool)."""

import base64
import json
import re

import pytest

import swarmbook.tasks.docker as T
from swarmbook import dockercmd as D
from swarmbook import facts as F
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import ABSENT, FakePool, make_run

install = T.install.body.__wrapped__
mirrors = T.mirrors.body.__wrapped__

# the facts docker.* probe, as their builders make them (the fake answers only these commands)
APT_VERSIONS = F.apt_versions(["docker.io", D.DEBIAN_CLI])
DAEMON_FILE = F.file_state(D.DAEMON_JSON, "daemon")
HAS_DOCKERD = F.command_exists("dockerd")
HAS_DOCKER = F.command_exists("docker")
HAS_CURL = F.command_exists("curl")
DOCKER_UNIT = F.unit_state("docker")
DOCKER_INFO = F.docker_info()
DEBIAN = ('ID=debian\n', 0)
PRESENT = {F.OS_RELEASE: DEBIAN, HAS_DOCKERD: ("/usr/sbin/dockerd", 0), HAS_DOCKER: ("/usr/bin/docker", 0),
           HAS_CURL: ("/usr/bin/curl", 0), DOCKER_UNIT: ("ActiveState=active\nUnitFileState=enabled\n", 0),
           F.user_groups("root"): ("root", 0)}


def run_body(pool, body, *args, env="MANAGERS=h1\n", check=False, **kw):
    run, out = make_run(pool, env, check=check, task="docker.x")
    run.each(run.settings.group("managers"), lambda h: body(h, *args, **kw))
    return run, out.getvalue()


def test_install_is_a_no_op_with_one_round_trip_when_docker_runs():
    pool = FakePool(PRESENT)
    run, out = run_body(pool, install, method="distro")
    assert pool.changes() == [] and pool.commands_run == 1
    assert run.reporter.counts()["h1"]["changed"] == 0


BOOKWORM_APT = ("   docker.io | 20.10.24+dfsg1-1+deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages\n"
                "   docker.io | 20.10.24+dfsg1-1+deb12u1 | http://deb.debian.org/debian bookworm/main Sources\n", 0)
# a Debian 13 host whose apt also has sid, pinned (the lab's 28.5 hosts): recorded `apt-cache madison` shape
TRIXIE_SID_APT = ("   docker.io | 28.5.2+dfsg4 | http://deb.debian.org/debian sid/main amd64 Packages\n"
                  "   docker.io | 26.1.5+dfsg1-9+b9 | http://deb.debian.org/debian trixie/main amd64 Packages\n"
                  "  docker-cli | 28.5.2+dfsg3 | http://deb.debian.org/debian sid/main amd64 Packages\n"
                  "  docker-cli | 26.1.5+dfsg1-9+b9 | http://deb.debian.org/debian trixie/main amd64 Packages\n", 0)
FRESH = {**PRESENT, HAS_DOCKERD: ("", 1), HAS_DOCKER: ("", 1),
         DOCKER_UNIT: ("ActiveState=inactive\nUnitFileState=\n", 0), F.ENGINE_VERSION: ("", 127)}


def test_install_distro_installs_starts_and_verifies():
    pool = FakePool({**FRESH, APT_VERSIONS: BOOKWORM_APT},
                    {r"apt-get install": Result("", "", 0), r"systemctl .*enable --now docker": Result("", "", 0),
                     r"docker version": Result("20.10.24\n", "", 0)})
    run, out = run_body(pool, install, method="distro")
    ch = pool.changes()
    assert "apt-get install -y -q --no-install-recommends docker.io ||" in ch[0]
    assert "systemctl enable --now docker" in ch[1]
    assert "engine 20.10.24" in out and run.failed() == []


def _installs(pool):
    return [c for c in pool.changes() if "apt-get install" in c]


def test_install_takes_the_cli_too_where_the_release_splits_it_out():
    """Debian 13's docker.io only recommends docker-cli: without it there is no `docker`."""
    ok = {r"apt-get install": Result("", "", 0), r"systemctl .*enable --now docker": Result("", "", 0),
          r"docker version": Result("26.1.5\n", "", 0)}
    pool = FakePool({**FRESH, APT_VERSIONS: TRIXIE_SID_APT}, ok)
    run, out = run_body(pool, install, method="distro")
    assert "--no-install-recommends docker.io docker-cli ||" in _installs(pool)[0] and run.failed() == []
    # an earlier install left dockerd without the CLI: only the CLI is added, not reported as installed
    pool = FakePool({**PRESENT, HAS_DOCKER: ("", 1), APT_VERSIONS: TRIXIE_SID_APT},
                    {r"apt-get install": Result("", "", 0), r"systemctl .*enable --now docker": Result("", "", 0),
                     r"docker version": Result("26.1.5\n", "", 0)})
    run, out = run_body(pool, install, method="distro")
    (cmd,) = _installs(pool)
    assert "--no-install-recommends docker-cli ||" in cmd and "docker.io" not in cmd
    assert "docker installed" not in out and run.failed() == []


def test_install_version_picks_the_matching_packages_the_sources_offer():
    ok = {r"apt-get install": Result("", "", 0), r"systemctl .*enable --now docker": Result("", "", 0)}
    pool = FakePool({**FRESH, APT_VERSIONS: TRIXIE_SID_APT}, {**ok, r"docker version": Result("26.1.5\n", "", 0)})
    run, out = run_body(pool, install, method="distro", version="26.1")
    assert "docker.io=26.1.5+dfsg1-9+b9 docker-cli=26.1.5+dfsg1-9+b9 ||" in _installs(pool)[0]
    assert run.failed() == [] and "engine 26.1.5" in out
    # the engine that answers is not the one asked for (a pin elsewhere won): failed, says both
    pool = FakePool({**FRESH, APT_VERSIONS: TRIXIE_SID_APT}, {**ok, r"docker version": Result("28.5.2\n", "", 0)})
    run, out = run_body(pool, install, method="distro", version="26.1")
    assert run.failed() == ["h1"] and "engine 28.5.2 answers, not DOCKER_VERSION 26.1" in out


def test_install_version_the_sources_do_not_offer_fails_naming_what_they_offer():
    pool = FakePool({**FRESH, APT_VERSIONS: BOOKWORM_APT})
    run, out = run_body(pool, install, method="distro", version="28.5")
    assert _installs(pool) == [] and run.failed() == ["h1"]
    assert "DOCKER_VERSION 28.5: the package sources offer docker.io 20.10.24+dfsg1-1+deb12u1 (bookworm)" in out


def test_install_script_passes_the_version_to_get_docker():
    pool = FakePool(FRESH, {r"get-docker.sh": Result("", "", 0), r"systemctl": Result("", "", 0),
                            r"docker version": Result("28.5.2\n", "", 0)})
    run, out = run_body(pool, install, method="script", version="28.5")
    assert pool.changes()[0].endswith("sh /tmp/get-docker.sh --version 28.5") and run.failed() == []


def test_install_keeps_an_installed_engine_of_another_version_and_says_so():
    pool = FakePool({**PRESENT, F.ENGINE_VERSION: ("Docker version 20.10.24+dfsg1, build 297e128\n", 0)})
    run, out = run_body(pool, install, method="distro", version="28.5")
    assert pool.changes() == [] and run.failed() == []
    assert "engine 20.10.24+dfsg1 is installed, not DOCKER_VERSION 28.5" in out


def test_install_adds_non_root_user_to_docker_group_then_reconnects():
    """A new group membership applies only to new sessions: after usermod the engine must
    reconnect, and the check that docker answers runs in the new session."""
    pool = FakePool({**PRESENT, F.user_groups("ops"): ("ops sudo", 0)}, {r"usermod -aG docker ops": Result("", "", 0),
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
    pool = FakePool({**PRESENT, F.user_groups("ops"): ("ops sudo docker", 0)})
    run, out = run_body(pool, install, env="MANAGERS=ops@h1\n", method="distro")
    assert pool.changes() == [] and pool.commands_run == 1
    assert pool.reconnects() == 0
    assert run.reporter.counts()["h1"]["changed"] == 0 and run.failed() == []


def test_install_adds_curl_where_it_is_missing():
    """swarmbook reads the engine API with curl (and get.docker.com is fetched with it)."""
    pool = FakePool({**PRESENT, HAS_CURL: ("", 1)}, {r"apt-get install .*curl": Result("", "", 0)})
    run, out = run_body(pool, install, method="distro")
    assert len(pool.changes()) == 1 and "curl" in pool.changes()[0] and run.failed() == []
    pool = FakePool({**PRESENT, HAS_CURL: ("", 1), F.OS_RELEASE: ("ID=plan9\n", 0)})
    run, out = run_body(pool, install, method="distro")
    assert pool.changes() == [] and run.failed() == ["h1"] and "install curl first" in out


def test_install_check_mode_sends_no_change():
    pool = FakePool({**PRESENT, HAS_DOCKERD: ("", 1)})
    run, out = run_body(pool, install, method="script", check=True)
    assert pool.changes() == []
    assert "would change" in out and "get.docker.com" in out


def test_bad_method_or_version_is_refused_before_hosts():
    settings = make_run(FakePool())[0].settings
    with pytest.raises(ConfigError, match="--method 'pip'"):
        T._check_install(settings, method="pip")
    for bad in ("28.5; reboot", "latest", "-1", "28.5 ", "x" * 80):
        with pytest.raises(ConfigError, match="DOCKER_VERSION .* is not a version"):
            T._check_install(settings, method="distro", version=bad)
    T._check_install(settings, method="distro", version="28.5.2+dfsg4")


def test_mirrors_merge_keeps_other_keys_and_restarts_once():
    daemon = 'root root 644\n{"log-driver": "journald"}'
    pool = FakePool({HAS_DOCKERD: ("/usr/bin/dockerd", 0), DAEMON_FILE: (daemon, 0), DOCKER_INFO: ABSENT},
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
    pool = FakePool({HAS_DOCKERD: ("/usr/bin/dockerd", 0), DAEMON_FILE: (daemon, 0), DOCKER_INFO: (info, 0)})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    assert pool.changes() == [] and pool.commands_run == 1


def test_mirrors_written_but_not_running_restart_the_engine_once():
    daemon = 'root root 644\n{\n  "registry-mirrors": [\n    "https://m.lab:5001"\n  ]\n}\n'
    info = json.dumps({"RegistryConfig": {"Mirrors": []}})  # e.g. a run killed before the restart
    pool = FakePool({HAS_DOCKERD: ("/usr/bin/dockerd", 0), DAEMON_FILE: (daemon, 0), DOCKER_INFO: (info, 0)},
                    {r"systemctl restart docker": Result("", "", 0)})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    assert len(pool.changes()) == 1 and "not applied yet" in out


def test_mirrors_refuse_to_touch_unreadable_daemon_json():
    pool = FakePool({HAS_DOCKERD: ("/usr/bin/dockerd", 0), DAEMON_FILE: ("root root 644\n{broken", 0),
                     DOCKER_INFO: ABSENT})
    run, out = run_body(pool, mirrors, mirrors="https://m.lab:5001")
    assert pool.changes() == [] and run.failed() == ["h1"]
    assert "not valid JSON" in out


def test_bad_mirror_refused_before_hosts():
    with pytest.raises(ConfigError, match="not an http"):
        T._wanted_mirrors(make_run(FakePool())[0].settings, mirrors="ftp://x")
