"""Task flow of issue 5 against the scripted SSH pool: which commands are sent given some facts,
what is refused before any host is touched, and that secrets travel on stdin only."""

import pytest

import tasks.gitlab as G
import tasks.kernel as KT
import tasks.runner as RT
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import FakePool, make_run

CENTOS7 = ('ID="centos"\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n', 0)
KERNEL = "4.14.105-19.0013.tl2.x86_64"


def body(task):
    return task.body.__wrapped__


def run_on(pool, fn, env="MANAGERS=h1\n", check=False, **kw):
    run, out = make_run(pool, env, check=check, task="t.x")
    run.each(run.settings.group("managers"), lambda h: fn(h, **kw))
    return run, out.getvalue()


def test_tlinux_rhel7_flow_repo_packages_grub_reboot_and_wait(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda s: None)
    pool = FakePool({"os": CENTOS7, "repo": ("", 1), "pinned": ("", 0), "default_kernel": ("/boot/vmlinuz-3.10.0\n", 0),
                     "running_kernel": ("3.10.0-1160.el7.x86_64\n", 0)},
                    {r"CentOS-TLinux.repo": Result("", "", 0), r"^yum -y install": Result("", "", 0),
                     r"^grubby --set-default": Result("", "", 0), r"systemctl reboot": Result("", "", 0),
                     r"^uname -r$": Result(KERNEL + "\n", "", 0)})
    run, out = run_on(pool, body(KT.tlinux), reboot=True, timeout=60)
    ch = pool.changes()
    assert "CentOS-TLinux.repo" in ch[0] and pool.sent[0][1] is None  # facts first
    assert ch[1] == "yum -y install kernel-devel-4.14.105-19.0012.tl2.x86_64 " \
                    "kernel-4.14.105-19.0013.tl2.x86_64 kernel-headers-4.14.105-19.0013.tl2.x86_64"
    assert ch[2].startswith(f"grubby --set-default /boot/vmlinuz-{KERNEL} && grub2-mkconfig")
    assert "systemctl reboot" in ch[3] and ch[4] == "uname -r"
    assert run.failed() == [] and f"running kernel: {KERNEL}" in out


def test_tlinux_without_reboot_never_reboots_and_second_run_is_quiet():
    done = {"os": CENTOS7, "repo": ("root root 644\n" + __import__("swarmbook.kernelcmd", fromlist=["x"]).repo_text(
        "https://mirrors.tencent.com/tlinux/2.4/tlinux/x86_64/"), 0),
            "pinned": ("kernel-devel-4.14.105-19.0012.tl2.x86_64\nkernel-4.14.105-19.0013.tl2.x86_64\n"
                       "kernel-headers-4.14.105-19.0013.tl2.x86_64\n", 0),
            "default_kernel": (f"/boot/vmlinuz-{KERNEL}\n", 0), "running_kernel": ("3.10.0\n", 0)}
    pool = FakePool(done)
    run, out = run_on(pool, body(KT.tlinux), reboot=False)
    assert pool.changes() == [] and run.reporter.counts()["h1"]["changed"] == 0
    assert "starts at the next reboot" in out


def test_tlinux_refuses_on_debian_after_one_read():
    pool = FakePool({"os": ('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n', 0)})
    run, out = run_on(pool, body(KT.tlinux))
    assert pool.changes() == [] and pool.commands_run == 1 and run.failed() == ["h1"]
    assert "RHEL/CentOS 7 only" in out


def test_ipvs_tune_writes_and_applies_where_ipvs_exists():
    pool = FakePool({"ipvs": ("", 0), "file": ("", 1), "ipvs_values": ("1\n0\n", 0)},
                    {r"90-swarmbook-ipvs.conf": Result("", "", 0)})
    run, out = run_on(pool, body(KT.ipvs_tune))
    ch = pool.changes()
    assert "/etc/sysctl.d/90-swarmbook-ipvs.conf" in ch[0] and ch[1] == "sysctl -q -p /etc/sysctl.d/90-swarmbook-ipvs.conf"


def test_register_sends_token_on_stdin_only():
    token = "glrt-very-secret"
    pool = FakePool({"has:gitlab-runner": ("/usr/bin/gitlab-runner", 0), "config": ("root root 600\nconcurrent = 1\n", 0)},
                    {r"gitlab-runner register": Result("", "", 0)})
    env = f"MANAGERS=h1\nRUNNER_TOKEN={token}\nRUNNER_URL=http://gitlab.x/\n"
    run, out = make_run(pool, env, task="runner.register")
    orig_exec = pool.exec

    def exec_and_register(conn, command, **kw):  # after register, config.toml names the runner
        res = orig_exec(conn, command, **kw)
        if "gitlab-runner register" in command:
            pool.facts["config"] = ('root root 600\nconcurrent = 1\n[[runners]]\n  name = "deploy-1"\n', 0)
        return res
    pool.exec = exec_and_register
    run.each(run.settings.group("managers"), lambda h: body(RT.register)(h, name="deploy-1"))
    (cmd, stdin), = [(c, s) for c, s in pool.sent if "register" in c]
    assert token not in cmd and stdin == token + "\n" and "CI_SERVER_TOKEN" in cmd
    assert token not in out.getvalue() and run.failed() == []


def test_validators_refuse_before_hosts():
    from swarmbook.config import parse

    s = parse("MANAGERS=h1\n", environ={})
    with pytest.raises(ConfigError, match="RUNNER_TOKEN is empty"):
        RT._register_args(s)
    with pytest.raises(ConfigError, match="--executor 'bash'"):
        RT._register_args(parse("RUNNER_TOKEN=x\n", environ={}), executor="bash")
    with pytest.raises(ConfigError, match="GITLAB_SMTP_ADDRESS is empty"):
        G._validate_smtp(s)
    with pytest.raises(ConfigError, match="not \\[address:\\]host:container"):
        G._validate_up(s, ports="22")
    with pytest.raises(ConfigError, match="whole number >= 1"):
        RT._concurrency(s, concurrent="0")


def test_gitlab_up_refuses_22_while_sshd_listens():
    pool = FakePool({"has:docker": ("/usr/bin/docker", 0), "container:gitlab": ("", 1),
                     "listen:22": ('LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))', 0),
                     "dirs": ("", 1)})
    run, out = run_on(pool, body(G.up), env="MANAGERS=h1\n")
    assert pool.changes() == [] and run.failed() == ["h1"] and "sshd.move-port" in out


def test_every_new_task_has_help_and_validators_accept_every_parameter():
    import inspect

    import tasks.cron
    import tasks.kong
    import tasks.mysql
    import tasks.portainer
    for mod in (G, RT, KT, tasks.cron, tasks.kong, tasks.mysql, tasks.portainer):
        for t in mod.ns.tasks.values():
            assert t.__doc__ and t.__doc__.strip().splitlines()[0].endswith("."), t.name
            spec = t.body.swarmbook if hasattr(t.body, "swarmbook") else None
            assert spec is not None
            params = [p for p in inspect.signature(t.body).parameters if p not in ("c", "env_file", "check", "json")]
            for p in params:
                assert p.replace("_", "-") in t.help or p in t.help, (t.name, p)


def test_gitlab_up_on_a_healthy_unchanged_container_is_one_round_trip():
    """The first probe's health is enough: no second look, no HTTP check."""
    import json

    from swarmbook import gitlabcmd as GC
    from swarmbook.config import parse

    env = "MANAGERS=h1\nGITLAB=h1\n"
    s = parse(env, environ={})
    c = GC.container(image=s["GITLAB_IMAGE"], hostname="h1", home=s["GITLAB_HOME"], ports=tuple(s["GITLAB_PORTS"]))
    from swarmbook.containercmd import SPEC_LABEL
    state = {"Id": "g1", "State": {"Running": True, "Status": "running", "Health": {"Status": "healthy"}},
             "Config": {"Labels": {SPEC_LABEL: c.spec_hash()}}}
    port = GC.host_port(tuple(s["GITLAB_PORTS"]), 22)
    pool = FakePool({"has:docker": ("/usr/bin/docker", 0), "container:gitlab": (json.dumps(state), 0),
                     f"listen:{port}": ('LISTEN 0 128 0.0.0.0:22 users:(("docker-proxy",pid=9,fd=4))', 0),
                     "dirs": ("", 0)})
    run, out = run_on(pool, body(G.up), env=env)
    assert run.failed() == [] and pool.changes() == [] and pool.commands_run == 1, out
    assert "GitLab healthy" in out and "already" in out
