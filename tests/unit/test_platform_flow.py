"""Task flow of issue 5 against the scripted SSH pool: which commands are sent given some facts,
what is refused before any host is touched, and that secrets travel on stdin only."""

import pytest

import swarmbook.tasks.gitlab as G
import swarmbook.tasks.kernel as KT
import swarmbook.tasks.runner as RT
from swarmbook import containercmd as C
from swarmbook import facts as F
from swarmbook import gitlabcmd as GC
from swarmbook import kernelcmd as K
from swarmbook import oscmd
from swarmbook import portainercmd as P
from swarmbook import runnercmd as N
from swarmbook.config import KEYS
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import FakePool, make_run, tar_bytes

CENTOS7 = ('ID="centos"\nVERSION_ID="7"\nPRETTY_NAME="CentOS Linux 7 (Core)"\n', 0)
KERNEL = "4.14.105-19.0013.tl2.x86_64"

# the facts these tasks probe, as their builders make them (the fake answers only these commands)
TLINUX_REPO = F.file_state(K.REPO, "repo")
PINNED = K.installed_fact(list(KEYS["TLINUX_PACKAGES"].default))
IPVS_FILE = F.file_state(K.SYSCTL_FILE, "file")
HAS_RUNNER = F.command_exists("gitlab-runner")
RUNNER_CONFIG = F.file_state(N.CONFIG, "config")
HAS_DOCKER = F.command_exists("docker")
GITLAB_STATE = C.state_fact(GC.CONTAINER)
GITLAB_DIRS = GC.dirs_fact("/srv/gitlab")


def body(task):
    return task.body.__wrapped__


def run_on(pool, fn, env="MANAGERS=h1\n", check=False, **kw):
    run, out = make_run(pool, env, check=check, task="t.x")
    run.each(run.settings.group("managers"), lambda h: fn(h, **kw))
    return run, out.getvalue()


def test_tlinux_without_reboot_never_reboots_and_second_run_is_quiet():
    done = {F.OS_RELEASE: CENTOS7, TLINUX_REPO: ("root root 644\n" + K.repo_text(
        "https://mirrors.tencent.com/tlinux/2.4/tlinux/x86_64/"), 0),
            PINNED: ("kernel-devel-4.14.105-19.0012.tl2.x86_64\nkernel-4.14.105-19.0013.tl2.x86_64\n"
                       "kernel-headers-4.14.105-19.0013.tl2.x86_64\n", 0),
            K.DEFAULT_KERNEL: (f"/boot/vmlinuz-{KERNEL}\n", 0), K.RUNNING_KERNEL: ("3.10.0\n", 0),
            K.BOOT_ID: ("old-boot-id\n", 0)}
    pool = FakePool(done)
    run, out = run_on(pool, body(KT.tlinux), reboot=False)
    assert pool.changes() == [] and run.reporter.counts()["h1"]["changed"] == 0
    assert "starts at the next reboot" in out


def test_tlinux_refuses_on_debian_after_one_read():
    pool = FakePool({F.OS_RELEASE: ('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n', 0)})
    run, out = run_on(pool, body(KT.tlinux))
    assert pool.changes() == [] and pool.commands_run == 1 and run.failed() == ["h1"]
    assert "RHEL/CentOS 7 only" in out


def test_ipvs_tune_writes_and_applies_where_ipvs_exists():
    pool = FakePool({K.IPVS_FACT: ("", 0), IPVS_FILE: ("", 1), K.SYSCTL_VALUES: ("1\n0\n", 0)},
                    {r"90-swarmbook-ipvs.conf": Result("", "", 0)})
    run, out = run_on(pool, body(KT.ipvs_tune))
    ch = pool.changes()
    assert "/etc/sysctl.d/90-swarmbook-ipvs.conf" in ch[0] and ch[1] == "sysctl -q -p /etc/sysctl.d/90-swarmbook-ipvs.conf"


def test_register_sends_token_on_stdin_only():
    token = "glrt-very-secret"
    pool = FakePool({HAS_RUNNER: ("/usr/bin/gitlab-runner", 0), RUNNER_CONFIG: ("root root 600\nconcurrent = 1\n", 0)},
                    {r"gitlab-runner register": Result("", "", 0)})
    env = f"MANAGERS=h1\nRUNNER_TOKEN={token}\nRUNNER_URL=http://gitlab.x/\n"
    run, out = make_run(pool, env, task="runner.register")
    orig_exec = pool.exec

    def exec_and_register(conn, command, **kw):  # after register, config.toml names the runner
        res = orig_exec(conn, command, **kw)
        if "gitlab-runner register" in command:
            pool.facts[RUNNER_CONFIG] = ('root root 600\nconcurrent = 1\n[[runners]]\n  name = "deploy-1"\n', 0)
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
    pool = FakePool({HAS_DOCKER: ("/usr/bin/docker", 0), GITLAB_STATE: ("", 1),
                     GC.listeners_fact(22): ('LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=1,fd=3))', 0),
                     GITLAB_DIRS: ("", 1)})
    run, out = run_on(pool, body(G.up), env="MANAGERS=h1\n")
    assert pool.changes() == [] and run.failed() == ["h1"] and "sshd.move-port" in out


def test_every_new_task_has_help_and_validators_accept_every_parameter():
    import inspect

    import swarmbook.tasks.cron
    import swarmbook.tasks.kong
    import swarmbook.tasks.mysql
    import swarmbook.tasks.portainer
    for mod in (G, RT, KT, swarmbook.tasks.cron, swarmbook.tasks.kong, swarmbook.tasks.mysql, swarmbook.tasks.portainer):
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
    pool = FakePool({HAS_DOCKER: ("/usr/bin/docker", 0), GITLAB_STATE: (json.dumps(state), 0),
                     GC.listeners_fact(port): ('LISTEN 0 128 0.0.0.0:22 users:(("docker-proxy",pid=9,fd=4))', 0),
                     GITLAB_DIRS: ("", 0)})
    run, out = run_on(pool, body(G.up), env=env)
    assert run.failed() == [] and pool.changes() == [] and pool.commands_run == 1, out
    assert "GitLab healthy" in out and "already" in out


# --- builder and deploy runners ---------------------------------------------------------------

class RunnerHosts(FakePool):
    """FakePool with a config.toml per host, to which `gitlab-runner register` appends its runner."""

    def __init__(self):
        super().__init__({HAS_RUNNER: ("/usr/bin/gitlab-runner", 0)})
        import threading
        self.lock = threading.Lock()
        self.toml: dict[str, str] = {}
        self.by_host: list[tuple[str, str, str | None]] = []

    def connect(self, spec, **kw):
        return spec.host

    def exec(self, conn, command, **kw):
        import shlex
        with self.lock:
            self.facts[RUNNER_CONFIG] = ("root root 600\n" + self.toml.get(conn, "concurrent = 1\n"), 0)
            res = super().exec(conn, command, **kw) if "@@" in command else Result("", "", 0)
            self.by_host.append((conn, command, kw.get("stdin")))
            if "gitlab-runner register" in command:
                name = shlex.split(command.split("&& ", 2)[-1])
                name = name[name.index("--name") + 1]
                self.toml[conn] = self.toml.get(conn, "concurrent = 1\n") + f'[[runners]]\n  name = "{name}"\n'
            return res

    def registered(self, host):
        return [(c, s) for h, c, s in self.by_host if h == host and "gitlab-runner register" in c]


RUNNER_ENV = ("MANAGERS=h1\nWORKERS=h2\nRUNNERS=h2\nDEPLOY_RUNNERS=h1\nRUNNER_URL=http://gitlab.x/\n"
              "RUNNER_TOKEN=GR1348941builder-secret\nDEPLOY_RUNNER_TOKEN=GR1348941deploy-secret\n")


def register_all(pool, env=RUNNER_ENV, **kw):
    run, out = make_run(pool, env, task="runner.register")
    RT._register_args(run.settings, **kw)  # what the task's validator does first
    run.each(run.settings.group("runner_hosts"), lambda h: body(RT.register)(h, **kw))
    return run, out.getvalue()


def test_register_builder_on_runners_and_deploy_runner_on_the_manager_each_with_its_token_and_tags():
    import shlex

    pool = RunnerHosts()
    run, out = register_all(pool)
    assert run.failed() == [], out
    (cmd, stdin), = pool.registered("h2")
    argv = shlex.split(cmd.split("&& ", 2)[-1])
    assert stdin == "GR1348941builder-secret\n" and "REGISTRATION_TOKEN" in cmd
    assert argv[argv.index("--name") + 1] == "h2" and argv[argv.index("--tag-list") + 1] == "builder"
    (cmd, stdin), = pool.registered("h1")
    argv = shlex.split(cmd.split("&& ", 2)[-1])
    assert stdin == "GR1348941deploy-secret\n"
    assert argv[argv.index("--name") + 1] == "h1-deploy" and argv[argv.index("--tag-list") + 1] == "test"
    assert "secret" not in out
    again, out = register_all(pool)
    assert again.reporter.counts()["h1"]["changed"] == again.reporter.counts()["h2"]["changed"] == 0
    assert len(pool.registered("h1")) == len(pool.registered("h2")) == 1, out


def test_deploy_runner_with_an_authentication_token_sends_no_tags():
    pool = RunnerHosts()
    env = RUNNER_ENV.replace("GR1348941deploy-secret", "glrt-deploy-secret") + "DEPLOY_RUNNER_TAGS=tags\n"
    run, out = register_all(pool, env)
    (cmd, stdin), = pool.registered("h1")
    assert "CI_SERVER_TOKEN" in cmd and "--tag-list" not in cmd and stdin == "glrt-deploy-secret\n"
    assert "--tag-list builder" in pool.registered("h2")[0][0] and run.failed() == []


def test_role_option_limits_the_run_to_one_group_and_a_host_with_both_roles():
    pool = RunnerHosts()
    run, out = register_all(pool, role="deploy")
    assert pool.registered("h2") == [] and [h for h, _, _ in pool.by_host if h == "h2"] == []  # not even probed
    assert len(pool.registered("h1")) == 1 and "skipped" in out and "builder runner only" in out
    both = RunnerHosts()
    env = RUNNER_ENV.replace("RUNNERS=h2\n", "RUNNERS=h1\n")  # h1 carries both runners
    run, out = register_all(both, env, name="x")
    assert run.failed() == ["h1"] and "--role builder or --role deploy" in out and both.registered("h1") == []
    run, out = register_all(both, env)
    assert [c.split("--name ")[1].split()[0] for c, _ in both.registered("h1")] == ["h1", "h1-deploy"]


def test_register_refuses_a_missing_or_shared_glrt_deploy_token_before_any_host():
    with pytest.raises(ConfigError, match="DEPLOY_RUNNER_TOKEN is empty"):
        RT._register_args(parse_env(RUNNER_ENV.replace("DEPLOY_RUNNER_TOKEN=GR1348941deploy-secret\n", "")))
    RT._register_args(parse_env(RUNNER_ENV.replace("DEPLOY_RUNNER_TOKEN=GR1348941deploy-secret\n", "")),
                      role="builder")  # the builder alone needs only its own token
    same = RUNNER_ENV.replace("GR1348941builder-secret", "glrt-one").replace("GR1348941deploy-secret", "glrt-one")
    with pytest.raises(ConfigError, match="same glrt- token"):
        RT._register_args(parse_env(same))
    with pytest.raises(ConfigError, match="--role 'prod'"):
        RT._concurrency(parse_env(RUNNER_ENV), role="prod")


def parse_env(text):
    from swarmbook.config import parse
    return parse(text, environ={})


def test_install_concurrency_and_grant_cover_both_groups():
    for t in (RT.install, RT.register, RT.concurrency, RT.grant):
        assert t.body.swarmbook.group == "runner_hosts" and "role" in t.help
    s = parse_env(RUNNER_ENV)
    assert [h.host for h in s.group("runner_hosts")] == ["h2", "h1"]


def test_bootstrap_registers_both_roles_when_each_has_hosts_and_a_token():
    import swarmbook.tasks.bootstrap as B

    def steps(env):
        return [(kw, skip) for t, kw, skip in B.plan(parse_env(env)) if t is RT.register]

    assert steps(RUNNER_ENV) == [({"role": "builder"}, ""), ({"role": "deploy"}, "")]
    no_deploy_token = RUNNER_ENV.replace("DEPLOY_RUNNER_TOKEN=GR1348941deploy-secret\n", "")
    assert steps(no_deploy_token)[1] == ({"role": "deploy"}, "DEPLOY_RUNNER_TOKEN not set")
    assert steps("MANAGERS=h1\nRUNNER_TOKEN=x\n")[1][1] == "DEPLOY_RUNNERS is empty"
    install = [skip for t, kw, skip in B.plan(parse_env("MANAGERS=h1\nDEPLOY_RUNNERS=h1\n")) if t is RT.install]
    assert install == [""]


def test_install_on_debian_without_key_tools_installs_them_before_fetching_the_key():
    pool = FakePool({F.OS_RELEASE: ('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n', 0),
                     N.GIT_VERSION: ("git version 2.39.5", 0), HAS_RUNNER: ("", 1), N.KEY_TOOLS_FACT: ("ii  curl\n", 1),
                     F.file_state(N.APT_SOURCE, "apt"): ("", 1), F.file_state(N.YUM_REPO, "yum"): ("", 1),
                     N.KEYRING_FACT: ("", 1)},
                    {r"apt-get install -y -q --no-install-recommends gnupg ca-certificates; }$": Result("", "", 0), r"gpgkey": Result("", "", 0),
                     r"runner_gitlab-runner.list": Result("", "", 0),
                     r"apt-get install -y -q gitlab-runner$": Result("", "", 0),
                     r"^gitlab-runner --version": Result("gitlab-runner 17.0\n", "", 0)})
    run, out = run_on(pool, body(RT.install), env="MANAGERS=h1\nRUNNERS=h1\n")
    ch = pool.changes()
    assert run.failed() == [], out
    assert ch[0] == oscmd.install("debian", ["gnupg", "ca-certificates"]) and "gpgkey" in ch[1]


# --- kernel.tlinux: wait for a new boot ---------------------------------------------------------

def _rebooting(answers):
    """A CentOS 7 host on the old kernel whose boot_id/uname answers after the reboot are ``answers``
    (a Result each; the last repeats)."""
    pool = FakePool({F.OS_RELEASE: CENTOS7, TLINUX_REPO: ("", 1), PINNED: ("", 0),
                     K.DEFAULT_KERNEL: ("/boot/vmlinuz-3.10.0\n", 0), K.RUNNING_KERNEL: ("3.10.0-1160.el7.x86_64\n", 0),
                     K.BOOT_ID: ("old-boot-id\n", 0)},
                    {r"CentOS-TLinux.repo": Result("", "", 0), r"^yum -y install": Result("", "", 0),
                     r"^grubby --set-default": Result("", "", 0), r"systemctl reboot": Result("", "", 0)})
    queue = list(answers)
    orig = pool.exec

    def exec_(conn, command, **kw):
        if command == "cat /proc/sys/kernel/random/boot_id && uname -r":
            pool.sent.append((command, None))
            return queue.pop(0) if len(queue) > 1 else queue[0]
        return orig(conn, command, **kw)
    pool.exec = exec_
    return pool


def run_rebooting(pool, **kw):
    """kernel.tlinux on h1 with a fake clock: a wait of minutes takes no time."""
    clock = [0.0]
    run, out = make_run(pool, "MANAGERS=h1\n", task="kernel.tlinux")
    run.clock, run.sleep = (lambda: clock[0]), (lambda s: clock.__setitem__(0, clock[0] + s))
    run.each(run.settings.group("managers"), lambda h: body(KT.tlinux)(h, **kw))
    return run, out.getvalue()


def test_tlinux_rhel7_flow_repo_packages_grub_reboot_and_wait():
    # the host first still answers from the old boot, then is gone, then answers from the new one
    pool = _rebooting([Result("old-boot-id\n3.10.0-1160.el7.x86_64\n", "", 0),
                                    Result("", "ssh: connection refused", 255),
                                    Result(f"new-boot-id\n{KERNEL}\n", "", 0)])
    run, out = run_rebooting(pool, reboot=True, timeout=60)
    ch = pool.changes()
    assert "CentOS-TLinux.repo" in ch[0] and pool.sent[0][1] is None  # facts first
    assert ch[1] == "yum -y install kernel-devel-4.14.105-19.0012.tl2.x86_64 " \
                    "kernel-4.14.105-19.0013.tl2.x86_64 kernel-headers-4.14.105-19.0013.tl2.x86_64"
    assert ch[2].startswith(f"grubby --set-default /boot/vmlinuz-{KERNEL} && grub2-mkconfig")
    assert "systemctl reboot" in ch[3] and ch[4:] == ["cat /proc/sys/kernel/random/boot_id && uname -r"] * 3
    assert "boot_id" in pool.sent[1][0]  # read in the same probe as the kernel facts, before the reboot
    assert run.failed() == [] and f"running kernel: {KERNEL}" in out


def test_tlinux_reboot_wait_times_out_naming_the_host_when_the_boot_never_changes():
    pool = _rebooting([Result("old-boot-id\n3.10.0-1160.el7.x86_64\n", "", 0)])
    run, out = run_rebooting(pool, reboot=True, timeout=30)
    assert run.failed() == ["h1"]
    assert "h1 still answers from the boot before the reboot 30s after the reboot command" in out
    assert "running kernel" not in out.split("systemctl reboot")[-1]


def test_tlinux_does_not_reboot_when_the_boot_id_cannot_be_read():
    pool = _rebooting([Result("x\n", "", 0)])
    pool.facts[K.BOOT_ID] = ("", 1)
    run, out = run_rebooting(pool, reboot=True, timeout=30)
    assert run.failed() == ["h1"] and not any("reboot" in c for c in pool.changes())


# --- portainer backup / restore -----------------------------------------------------------------

def _tar_b64(members):
    import base64
    import hashlib

    raw = tar_bytes(members)
    return raw, f"{hashlib.sha256(raw).hexdigest()}\n{base64.b64encode(raw).decode()}\n"


def test_backup_refuses_when_portainer_data_is_absent_and_writes_nothing(tmp_path):
    import swarmbook.tasks.portainer as PT

    _, answer = _tar_b64({"data": b""})  # what tarring a volume `docker run -v` just made would give
    pool = FakePool({P.VOLUME_FACT: ('{"message": "get portainer_data: no such volume"}', 22)},
                    {r"-cf - data": Result(answer, "", 0)})
    run, out = make_run(pool, "MANAGERS=h1\n", task="portainer.backup")
    body(PT.backup)(run, list(run.settings.group("managers")), to=str(tmp_path))
    text = out.getvalue()
    assert run.failed() == ["h1"] and "no volume portainer_data on h1" in text and "nothing written" in text
    assert pool.changes() == [] and list(tmp_path.iterdir()) == []


def test_backup_uses_the_configured_helper_image(tmp_path):
    import swarmbook.tasks.portainer as PT

    raw, answer = _tar_b64({"data/portainer.db": b"db"})
    pool = FakePool({P.VOLUME_FACT: ('{"Name": "portainer_data"}', 0)}, {r"-cf - data": Result(answer, "", 0)})
    run, out = make_run(pool, "MANAGERS=h1\nPORTAINER_HELPER_IMAGE=registry.x/tools:tar\n", task="portainer.backup")
    body(PT.backup)(run, list(run.settings.group("managers")), to=str(tmp_path))
    assert run.failed() == [], out.getvalue()
    (cmd,) = pool.changes()
    assert "--entrypoint tar -v portainer_data:/data:ro registry.x/tools:tar -C /" in cmd
    (tar,) = tmp_path.glob("*.tar")
    assert tar.read_bytes() == raw


def _scaled_pool(answer):
    """portainer scaled to 0 has no task container; scaled to 1 has one."""
    state = {"n": 1}

    def scale(command, host):
        state["n"] = int(command.split("portainer=")[1].split()[0])
        return Result("", "", 0)

    return FakePool({P.VOLUME_FACT: ('{"Name": "portainer_data"}', 0)},
                    {r"service scale": scale, r"containers/json": lambda c, h: Result("[{}]" if state["n"] else "[]", "", 0),
                     r"-cf - data": answer})


def test_backup_with_stop_copies_while_portainer_is_stopped_then_starts_it(tmp_path):
    import swarmbook.tasks.portainer as PT

    raw, answer = _tar_b64({"data/portainer.db": b"db"})
    pool = _scaled_pool(Result(answer, "", 0))
    run, out = make_run(pool, "MANAGERS=h1\n", task="portainer.backup")
    body(PT.backup)(run, list(run.settings.group("managers")), to=str(tmp_path), stop=True)
    assert run.failed() == [], out.getvalue()
    ch = pool.changes()
    order = [("0" if "portainer=0" in c else "1" if "portainer=1" in c else "tar") for c in ch
             if "service scale" in c or "-cf - data" in c]
    assert order == ["0", "tar", "1"], ch
    sent = [c for c, _ in pool.sent]
    tar_at = next(i for i, c in enumerate(sent) if "-cf - data" in c)
    assert any("containers/json" in c for c in sent[:tar_at])  # waited for the task to be gone
    assert any("containers/json" in c for c in sent[tar_at:])  # and for it to run again
    (tar,) = tmp_path.glob("*.tar")
    assert tar.read_bytes() == raw


def test_backup_with_stop_starts_portainer_again_when_the_copy_fails(tmp_path):
    import swarmbook.tasks.portainer as PT

    pool = _scaled_pool(Result("", "tar: read error", 2))
    run, out = make_run(pool, "MANAGERS=h1\n", task="portainer.backup")
    body(PT.backup)(run, list(run.settings.group("managers")), to=str(tmp_path), stop=True)
    assert run.failed() == ["h1"] and "tar: read error" in out.getvalue()
    scales = [c for c in pool.changes() if "service scale" in c]
    assert len(scales) == 2 and "portainer=1" in scales[-1] and pool.changes()[-1] == scales[-1]
    assert list(tmp_path.iterdir()) == []


def test_restore_starts_portainer_again_when_unpacking_fails(tmp_path):
    import hashlib

    import swarmbook.tasks.portainer as PT

    raw, _ = _tar_b64({"data/portainer.db": b"db"})
    (tmp_path / "b.tar").write_bytes(raw)
    (tmp_path / "b.tar.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  b.tar\n")
    pool = FakePool({}, {r"xargs -r sha256sum": Result("", "", 0),  # the volume is empty: restore needed
                         r"service scale": Result("", "", 0),
                         r"containers/json": Result("[]", "", 0),  # the task is gone
                         r"tar -C / -xf -": Result("", "tar: short read", 2)})
    run, out = make_run(pool, "MANAGERS=h1\n", task="portainer.restore")
    body(PT.restore)(run, list(run.settings.group("managers")), file=str(tmp_path / "b.tar"), yes=True)
    ch = pool.changes()
    scales = [c for c in ch if "service scale" in c]
    unpack = next(i for i, c in enumerate(ch) if "tar -C / -xf -" in c)
    assert run.failed() == ["h1"] and "tar: short read" in out.getvalue()
    assert len(scales) == 2 and "portainer=0" in scales[0] and "portainer=1" in scales[1]
    assert ch.index(scales[0]) < unpack < ch.index(scales[1]) and ch[-1] == scales[1]  # started again after it
    assert "nginx:latest" in ch[unpack]  # the default helper


# --- gitlab.root-password --to FILE ---------------------------------------------------------------

def test_root_password_file_is_0600_before_the_password_is_written(tmp_path, monkeypatch):
    import json
    import os
    import stat

    target = tmp_path / "root.pw"
    target.write_text("old\n")
    target.chmod(0o644)  # an existing, world-readable file
    modes = []
    real_fdopen = os.fdopen

    class Watch:
        def __init__(self, f):
            self.f = f

        def write(self, text):
            modes.append(stat.S_IMODE(os.stat(target).st_mode))
            return self.f.write(text)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.f.close()

    monkeypatch.setattr(os, "fdopen", lambda *a, **kw: Watch(real_fdopen(*a, **kw)))
    state = {"Id": "g", "State": {"Running": True, "Status": "running"}, "Config": {"Labels": {}}}
    pool = FakePool({GITLAB_STATE: (json.dumps(state), 0), F.file_state(f"/srv/gitlab/{G.SHOWN}", "shown"): ("", 1)},
                    {r"initial_root_password": Result("Password: s3cret-root=\n", "", 0)})
    run, out = run_on(pool, body(G.root_password), env="MANAGERS=h1\nGITLAB=h1\n", to=str(target))
    assert run.failed() == [], out
    assert modes == [0o600] and target.read_text() == "s3cret-root=\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600 and "s3cret-root" not in out
    new = tmp_path / "new.pw"
    old_umask = os.umask(0)
    try:
        run, out = run_on(pool, body(G.root_password), env="MANAGERS=h1\nGITLAB=h1\n", to=str(new))
    finally:
        os.umask(old_umask)
    assert modes == [0o600, 0o600] and stat.S_IMODE(os.stat(new).st_mode) == 0o600
