import json

import pytest

from swarmbook import dockercmd, facts as F, files, oscmd
from swarmbook.ops import file_differs, write_file_cmd


def test_with_line_appends_once_and_replaces_by_regexp():
    assert files.with_line("a\n", "b") == "a\nb\n"
    assert files.with_line("a\nb\n", "b") == "a\nb\n"
    assert files.with_line("Port 22\nX\n", "Port 2222", regexp=r"^#?Port ") == "Port 2222\nX\n"
    assert files.with_line("no-newline", "b") == "no-newline\nb\n"


def test_key_value_replaces_active_then_commented_key():
    toml = 'concurrent = 1\ncheck_interval = 0\n'
    assert files.with_key_value(toml, "concurrent", "5", sep=" = ") == 'concurrent = 5\ncheck_interval = 0\n'
    assert files.with_key_value("#Port 22\n", "Port", "2222", sep=" ") == "Port 2222\n"
    assert files.with_key_value("", "A", "1") == "A=1\n"


def test_without_line():
    assert files.without_line("Port 22\nPort 2222\n", r"^Port 22$") == "Port 2222\n"


def test_merged_json_keeps_other_keys_and_is_stable():
    cur = '{"log-driver": "json-file", "registry-mirrors": ["https://old"]}'
    new = files.merged_json(cur, {"registry-mirrors": ["https://m1"]})
    assert json.loads(new) == {"log-driver": "json-file", "registry-mirrors": ["https://m1"]}
    assert files.merged_json(new, {"registry-mirrors": ["https://m1"]}) == new  # second run: no change
    assert json.loads(files.merged_json("", {"a": 1})) == {"a": 1}


@pytest.mark.parametrize("bad", ['{"a": ', "[1, 2]", "nonsense"])
def test_merged_json_refuses_what_it_cannot_read(bad):
    with pytest.raises(files.BadJSON):
        files.merged_json(bad, {"a": 1})


def test_write_file_cmd_is_atomic_and_quoted():
    cmd = write_file_cmd("/etc/x y.conf", mode="0600", owner="root", group="docker")
    assert "mktemp '/etc/x y.conf'.XXXXXX" in cmd
    assert "mv -f \"$tmp\" '/etc/x y.conf'" in cmd
    assert "chmod 0600" in cmd and "chown root:docker" in cmd


def test_file_differs_reasons():
    st = {"owner": "root", "group": "root", "mode": "644", "content": "x"}
    assert file_differs(None, "x", mode="0644", owner="root", group="root") == "absent"
    assert file_differs(st, "y", mode="0644", owner="root", group="root") == "content differs"
    assert file_differs(st, "x", mode="0600", owner="root", group="root").startswith("owner/mode")
    assert file_differs(st, "x", mode="0644", owner="root", group="root") == ""


def test_os_family_detection():
    deb = F.parse_os_release('ID=debian\nVERSION_ID="12"\n')
    ubu = F.parse_os_release('ID=ubuntu\nID_LIKE=debian\n')
    cent = F.parse_os_release('ID="centos"\nID_LIKE="rhel fedora"\n')
    tos = F.parse_os_release('ID="tencentos"\nID_LIKE="rhel fedora centos"\n')
    assert [F.os_family(x) for x in (deb, ubu, cent, tos)] == ["debian", "debian", "rhel", "rhel"]
    assert F.os_family({"ID": "arch"}) == "unknown"


def test_package_commands_per_family():
    assert oscmd.install("debian", ["docker.io"]).startswith("export DEBIAN_FRONTEND=noninteractive; apt-get install")
    assert "apt-get update" in oscmd.install("debian", ["docker.io"])
    assert oscmd.install("rhel", ["docker", "git"]) == "yum install -y docker git"
    assert oscmd.install("debian", ["a;reboot"]).count("'a;reboot'") == 2


def test_fact_batch_roundtrip():
    fs = [F.file_state("/etc/a"), F.command_exists("docker"), F.user_groups("root")]
    script, token = F.batch(fs)
    assert script.count(token) == 6
    out = (f"@@{token}:0@@\nroot root 644\nline1\nline2\n@@{token}:0:rc=0@@\n"
           f"@@{token}:1@@\n\n@@{token}:1:rc=1@@\n"
           f"@@{token}:2@@\nroot docker\n@@{token}:2:rc=0@@\n")
    v = F.split(out, token, fs)
    assert v["file:/etc/a"] == {"owner": "root", "group": "root", "mode": "644", "content": "line1\nline2"}
    assert v["has:docker"] is False
    assert v["groups:root"] == {"root", "docker"}


def test_fact_split_detects_missing_output():
    fs = [F.command_exists("docker")]
    with pytest.raises(ValueError, match="output missing"):
        F.split("garbage", "abc", fs)


@pytest.mark.parametrize("url", ["https://registry.lab:5001", "https://registry.lab:5001/", "http://10.0.0.1",
                                 "http://[fd00::1]:5000/", "https://m:65535", "https://m:1"])
def test_mirror_dockerd_accepts(url):
    assert dockercmd.bad_mirror(url) == ""


@pytest.mark.parametrize("url, why", [
    # dockerd's ValidateMirror refuses these (daemon.json with one of them stops the engine)
    ("https://m/v2", "has a path (/v2)"),
    ("https://m//", "has a path (//)"),
    ("https://m/?a=b", "query or fragment"),
    ("https://m?a=b", "query or fragment"),
    ("https://m/#x", "query or fragment"),
    ("ftp://m", "not an http(s)://host[:port] URL"),
    ("registry.lab:5001", "not an http(s)://host[:port] URL"),
    ("https://user:pw@m", "user name or password"),
    ("https://user@m", "user name or password"),
    # and these could never be reached
    ("https://m:99999", "port '99999' is not a number from 1 to 65535"),
    ("https://m:0", "port '0'"),
    ("https://m:", "port ''"),
    ("https://", "not an http(s)://host[:port] URL"),
    ("https://x;reboot", "not an http(s)://host[:port] URL"),
    ("https://m /", "space or control character"),
    ("https://m\n", "space or control character"),
])
def test_mirror_dockerd_refuses(url, why):
    assert why in dockercmd.bad_mirror(url)


def test_mirror_refusal_never_echoes_a_password():
    why = dockercmd.bad_mirror("https://ops:s3cret-canary@mirror.lab:5001/")
    assert "s3cret-canary" not in why and "mirror.lab:5001" in why


def test_daemon_json_script_validates_before_install_and_restores():
    s = dockercmd.replace_engine_files({dockercmd.DAEMON_JSON: "{}\n"})
    assert "dockerd --validate" in s and "mv -f /etc/docker/daemon.json.swarmbook.bak /etc/docker/daemon.json" in s
    assert s.index("--validate") < s.index("mv -f /etc/docker/daemon.json.swarmbook.tmp")
    # Docker 26+ restarts in ~1 s: without this a fourth restart in a minute hits StartLimitBurst
    assert s.index("systemctl reset-failed docker") < s.index("systemctl restart docker")


def test_exec_start_and_tcp_dropin_keep_fd_socket():
    unit = ("# /lib/systemd/system/docker.service\n[Service]\nExecStart=/usr/sbin/dockerd -H fd:// \\\n"
            "   $DOCKER_OPTS\n# /etc/systemd/system/docker.service.d/x.conf\n[Service]\nExecStart=\nExecStart=/other\n")
    line = dockercmd.exec_start(unit)
    assert line == "/usr/sbin/dockerd -H fd:// $DOCKER_OPTS"
    drop = dockercmd.tcp_dropin(line, "tcp://0.0.0.0:2376")
    assert "ExecStart=\nExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS -H tcp://0.0.0.0:2376\n" in drop


def test_fact_batch_runs_in_a_real_shell_and_keeps_exact_content(tmp_path):
    import subprocess
    f = tmp_path / "x y.conf"
    f.write_text("line\n\n")
    fs = [F.file_state(str(f), "f"), F.command_exists("sh"), F.file_state(str(tmp_path / "none"), "none")]
    script, token = F.batch(fs)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout
    v = F.split(out, token, fs)
    assert v["f"]["content"] == "line\n\n"
    assert v["has:sh"] is True and v["none"] is None


def test_unit_stale_when_a_file_is_newer_or_systemd_needs_a_reload():
    from swarmbook.facts import parse_unit_stale, unit_stale

    assert parse_unit_stale("1700000100 no 1700000050\n", 0) is False
    assert parse_unit_stale("1700000100 no 1700000101\n", 0) is True   # written after the start
    assert parse_unit_stale("1700000100 yes 1700000050\n", 0) is True   # drop-in changed, no reload
    assert parse_unit_stale("1700000100 no\n", 0) is False               # no such files yet
    assert parse_unit_stale("", 1) is None                               # unit not running
    cmd = unit_stale("docker", ["/etc/docker/daemon.json", "/x y"]).command
    assert "'/x y'" in cmd and "NeedDaemonReload" in cmd


def _fake_systemctl(bin_dir, output: str) -> dict:
    """Environment whose PATH has a `systemctl` that prints ``output`` (as `systemctl show` would)."""
    import os

    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f"#!/bin/sh\nprintf '%s' '{output}'\n")
    (bin_dir / "systemctl").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_unit_stale_command_reads_one_systemctl_show_in_any_property_order(tmp_path):
    import os
    import subprocess

    from swarmbook.facts import unit_stale

    conf = tmp_path / "daemon.json"
    conf.write_text("{}")
    os.utime(conf, (1700000050, 1700000050))
    env = _fake_systemctl(tmp_path / "running", "NeedDaemonReload=no\nActiveEnterTimestamp=Tue 2023-11-14 22:15:00 UTC\n")
    out = subprocess.run(["sh", "-c", unit_stale("docker", [str(conf)]).command], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split() == ["1700000100", "no", "1700000050"], out
    not_running = _fake_systemctl(tmp_path / "stopped", "NeedDaemonReload=no\nActiveEnterTimestamp=\n")
    out = subprocess.run(["sh", "-c", unit_stale("docker", [str(conf)]).command], env=not_running,
                         capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""


def test_unit_state_is_active_and_enabled_from_one_systemctl_show():
    from swarmbook.facts import parse_unit_state, unit_state

    assert unit_state("docker").command == "systemctl show -p ActiveState -p UnitFileState docker"
    assert parse_unit_state("ActiveState=active\nUnitFileState=enabled\n", 0) == {"active": True, "enabled": True}
    assert parse_unit_state("UnitFileState=static\nActiveState=failed\n", 0) == {"active": False, "enabled": True}
    # a unit that is not installed: systemd answers inactive with no unit file state
    assert parse_unit_state("ActiveState=inactive\nUnitFileState=\n", 0) == {"active": False, "enabled": False}
    assert parse_unit_state("ActiveState=active\nUnitFileState=disabled\n", 0) == {"active": True, "enabled": False}


def test_engine_api_facts_join_tokens_and_docker_info_fallback():
    from swarmbook import swarmcmd as S
    from swarmbook.facts import docker_info, engine_get_cmd

    assert engine_get_cmd("/swarm") == ("curl -sSf --max-time 30 --unix-socket /var/run/docker.sock "
                                        "http://localhost/swarm")
    assert S.TOKENS.command == engine_get_cmd("/swarm")
    body = '{"ID": "x", "JoinTokens": {"Worker": "SWMTKN-1-w", "Manager": "SWMTKN-1-m"}, "Spec": {}}'
    assert S.TOKENS.parse(body, 0) == {"manager": "SWMTKN-1-m", "worker": "SWMTKN-1-w"}
    assert S.TOKENS.parse('{"message": "This node is not a swarm manager."}', 0) is None
    assert S.TOKENS.parse("", 22) is None and S.TOKENS.parse("not json", 0) is None
    # where curl is missing the docker CLI answers the same JSON
    assert docker_info().command == f"{engine_get_cmd('/info')} || docker info --format '{{{{json .}}}}'"


def test_engine_version_matching_and_apt_arguments():
    from swarmbook import dockercmd as dc
    from swarmbook.facts import parse_apt_versions

    assert dc.version_matches("26.1.5+dfsg1-9+b9", "26.1") and dc.version_matches("5:28.5.2-1~debian.12~bookworm", "28.5")
    assert not dc.version_matches("26.10.1", "26.1") and not dc.version_matches("20.10.24", "28")
    assert dc.version_matches("28.5.2+dfsg4", "28.5.2+dfsg4")
    offered = parse_apt_versions(
        "   docker.io | 28.5.2+dfsg4 | http://deb.debian.org/debian sid/main amd64 Packages\n"
        "   docker.io | 26.1.5+dfsg1-9+b9 | http://deb.debian.org/debian trixie/main amd64 Packages\n"
        "   docker.io | 26.1.5+dfsg1-9 | http://deb.debian.org/debian trixie/main Sources\n"
        "N: Unable to locate package docker-cli\n")
    assert offered == {"docker.io": [("28.5.2+dfsg4", "sid"), ("26.1.5+dfsg1-9+b9", "trixie")]}
    assert dc.engine_packages(offered) == ["docker.io"]  # no docker-cli offered (Debian 12)
    assert dc.engine_packages(offered, "28.5") == ["docker.io=28.5.2+dfsg4"]
    with pytest.raises(ValueError, match=r"offer docker.io 28.5.2\+dfsg4 \(sid\), 26.1.5\+dfsg1-9\+b9 \(trixie\)"):
        dc.engine_packages(offered, "27")
    assert dc.get_docker_cmd("28.5; id").endswith("--version '28.5; id'")  # quoted, never run
