"""Every verify step of kong.bootstrap, mysql.up, portainer.up/restore, runner.install/register,
kernel.tlinux and gitlab.up, made to fail: the host is reported failed, with the reason."""

import hashlib
import json

import swarmbook.tasks.gitlab as TG
import swarmbook.tasks.kong as TK
import swarmbook.tasks.mysql as TM
import swarmbook.tasks.portainer as TP
import swarmbook.tasks.runner as TR
from swarmbook import containercmd as C
from swarmbook import facts as F
from swarmbook import gitlabcmd, mysqlcmd, portainercmd
from swarmbook import runnercmd as N
from swarmbook.config import parse
from swarmbook.session import Result

from .fakes import ABSENT, Clock, FakePool, make_run, tar_bytes
from .test_kong_flow import ENV as KONG_ENV
from .test_kong_flow import converged
from .test_platform_flow import KERNEL, _rebooting, run_rebooting

OK = Result("", "", 0)


def run_with_clock(pool, env, task, call):
    clock = Clock()
    run, out = make_run(pool, env, task=task, clock=clock, sleep=clock.sleep)
    call(run)
    return run, out.getvalue()


def failed_with(run, out, reason, host="h1"):
    return run.failed() == [host] and f"failed: {reason}" in out


# --- kong.bootstrap ----------------------------------------------------------------------------

def _bootstrap(facts_for, responses):
    pool = FakePool({}, responses)

    def call(run):
        pool.facts.update(facts_for(run.settings))
        run.each(run.settings.group("kong"), lambda h: TK.bootstrap.body.__wrapped__(h))
    return run_with_clock(pool, KONG_ENV, "kong.bootstrap", call)


def test_bootstrap_fails_when_the_dashboard_refuses_the_configured_user():
    run, out = _bootstrap(converged, {r"-K -": Result("401", "", 0)})
    assert failed_with(run, out, "dashboard basic auth: expected 200 with credentials, got 401")


def test_bootstrap_fails_when_the_admin_api_never_answers():
    def admin_down(settings):
        facts = converged(settings)
        facts[TK.kongcmd.admin_ok_fact(TK.kongcmd.admin_url("127.0.0.1"))] = ("", 7)
        return facts
    run, out = _bootstrap(admin_down, {r"pg_isready": OK, r"^curl -fsS -o /dev/null -m 5 http://127.0.0.1:8001/$":
                                       Result("", "curl: (7) Failed to connect", 7)})
    assert failed_with(run, out, "Kong admin API: not ready after 180s")
    assert "dashboard" not in out


# --- mysql.up ----------------------------------------------------------------------------------

def test_mysql_up_fails_when_root_cannot_query():
    env = "MANAGERS=h1\nMYSQL_ROOT_PASSWORD=pw-1\n"
    net = parse(env, environ={})["NETWORK_NAME"]
    denied = "ERROR 1045 (28000): Access denied for user 'root'@'127.0.0.1' (using password: YES)\n"
    pool = FakePool({F.command_exists("docker"): ("/usr/bin/docker", 0),
                     C.network_fact(net): ('{"Driver": "overlay", "Attachable": true, "Scope": "swarm"}', 0),
                     C.state_fact(mysqlcmd.NAME): ABSENT, F.file_state(mysqlcmd.ENV_FILE, "env"): ABSENT},
                    {r'cat > "\$tmp"': OK, r"^docker run -d --name mysql": OK,
                     r"^docker exec -i mysql": Result("", denied, 1)})
    run, out = run_with_clock(pool, env, "mysql.up",
                              lambda run: TM.up.body.__wrapped__(run, run.settings.group("managers"), timeout=180))
    assert failed_with(run, out, f"MySQL does not answer a query as root after 180s: {denied.strip()} "
                                 "(a data folder made with another root password keeps that password)")
    queries = [stdin for c, stdin in pool.sent if c.startswith("docker exec -i mysql")]
    assert queries and set(queries) == {"pw-1\n"}  # asked again and again, the password on stdin only
    assert "pw-1" not in out


# --- portainer.up / restore ----------------------------------------------------------------------

def test_portainer_up_fails_when_the_service_runs_but_does_not_answer_http():
    s = parse("MANAGERS=h1\n", environ={})
    argv = portainercmd.create_argv(image=s["PORTAINER_IMAGE"], port=s["PORTAINER_PORT"],
                                    publish_mode=s["STACK_PUBLISH_MODE"])
    nodes = [{"ID": "n1", "Description": {"Hostname": "h1"}, "Status": {"Addr": "10.0.0.1"},
              "Spec": {"Role": "manager", "Labels": {"portainer": "true"}}}]
    service = {"Spec": {"Labels": {portainercmd.SPEC_LABEL: portainercmd.spec_hash(argv)},
                        "Mode": {"Replicated": {"Replicas": 1}}}}
    running, http = portainercmd.ready_facts(s["PORTAINER_PORT"])
    pool = FakePool({portainercmd.NODES_FACT: (json.dumps(nodes), 0), portainercmd.SERVICE_FACT: (json.dumps(service), 0),
                     running: ("[{}]", 0), http: ("", 7)},
                    {r"containers/json": Result("[{}]", "", 0), r"^curl -fsS -o /dev/null -m 3 http://127.0.0.1:9000/$":
                     Result("", "curl: (56) Recv failure: Connection reset by peer", 56)})
    run, out = run_with_clock(pool, "MANAGERS=h1\n", "portainer.up",
                              lambda run: TP.up.body.__wrapped__(run, run.settings.group("managers")))
    assert failed_with(run, out, "Portainer on http://127.0.0.1:9000/: not ready after 60s")
    assert "Portainer answers" not in out and pool.changes()[-1].startswith("curl")


def test_restore_fails_when_the_volume_does_not_match_the_backup_afterwards(tmp_path):
    raw = tar_bytes({"data/portainer.db": b"db"})
    (tmp_path / "b.tar").write_bytes(raw)
    (tmp_path / "b.tar.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  b.tar\n")
    pool = FakePool({}, {r"xargs -r sha256sum": OK,  # the volume holds nothing, before and after
                         r"service scale": OK, r"containers/json": Result("[]", "", 0), r"tar -C / -xf -": OK})
    run, out = run_with_clock(pool, "MANAGERS=h1\n", "portainer.restore", lambda run: TP.restore.body.__wrapped__(
        run, run.settings.group("managers"), file=str(tmp_path / "b.tar"), yes=True))
    assert failed_with(run, out, "verify: the volume's files differ from the backup after restore")
    assert "portainer=1" in [c for c in pool.changes() if "service scale" in c][-1]  # started again first


# --- runner.install / register -----------------------------------------------------------------

DEBIAN_12 = ('ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n', 0)


def _runner_facts(git="git version 2.39.5", runner=("", 1)):
    return {F.OS_RELEASE: DEBIAN_12, N.GIT_VERSION: (git, 0), F.command_exists("gitlab-runner"): runner,
            N.KEY_TOOLS_FACT: ("ii  curl\nii  gnupg\nii  ca-certificates\n", 0),
            F.file_state(N.APT_SOURCE, "apt"): ABSENT, F.file_state(N.YUM_REPO, "yum"): ABSENT,
            N.KEYRING_FACT: ABSENT}


def _install(pool):
    return run_with_clock(pool, "MANAGERS=h1\nRUNNERS=h1\n", "runner.install",
                          lambda run: run.each(run.settings.group("runner_hosts"), TR.install.body.__wrapped__))


def test_install_fails_when_the_installed_runner_does_not_start():
    pool = FakePool(_runner_facts(), {r"gpgkey": OK, r"runner_gitlab-runner.list": OK,
                                      r"apt-get install -y -q gitlab-runner$": OK,
                                      r"^gitlab-runner --version": Result("", "gitlab-runner: not found\n", 127)})
    run, out = _install(pool)
    assert failed_with(run, out, "gitlab-runner --version: gitlab-runner: not found (exit 127)")
    assert "gitlab-runner answers" not in out


def test_install_fails_when_git_is_still_too_old_after_the_upgrade():
    """The version reads as git prints it (it said "still (1, 8, 3)", or "still None" when gone)."""
    pool = FakePool(_runner_facts(git="git version 1.8.3.1"),
                    {r"apt-get install -y -q git$": OK, r"^git version$": Result("git version 1.8.3.1\n", "", 0)})
    run, out = _install(pool)
    assert failed_with(run, out, "git >= 2: still 1.8.3 after the upgrade")
    assert not [c for c in pool.changes() if "gitlab-runner" in c]  # nothing more once git is known bad
    pool = FakePool(_runner_facts(git="git version 1.8.3.1"),
                    {r"apt-get install -y -q git$": OK, r"^git version$": Result("", "sh: git: not found\n", 127)})
    run, out = _install(pool)
    assert failed_with(run, out, "git version: sh: git: not found (exit 127)")


def test_register_fails_when_the_runner_is_not_in_config_toml_afterwards():
    pool = FakePool({F.command_exists("gitlab-runner"): ("/usr/bin/gitlab-runner", 0),
                     F.file_state(N.CONFIG, "config"): ("root root 600\nconcurrent = 1\n", 0)},
                    {r"gitlab-runner register": OK})
    env = "MANAGERS=h1\nRUNNER_TOKEN=glrt-secret-token\nRUNNER_URL=http://gitlab.x/\n"
    run, out = run_with_clock(pool, env, "runner.register", lambda run: run.each(
        run.settings.group("managers"), lambda h: TR.register.body.__wrapped__(h, name="deploy-1")))
    assert failed_with(run, out, f"verify registration: deploy-1 is not in {N.CONFIG} after register")
    assert "glrt-secret-token" not in out


# --- kernel.tlinux, gitlab.up ------------------------------------------------------------------

def test_tlinux_fails_when_the_new_boot_runs_another_kernel():
    pool = _rebooting([Result("old-boot-id\n3.10.0-1160.el7.x86_64\n", "", 0),
                       Result("new-boot-id\n3.10.0-1160.el7.x86_64\n", "", 0)])
    run, out = run_rebooting(pool, reboot=True, timeout=60)
    assert failed_with(run, out, f"running kernel: 3.10.0-1160.el7.x86_64 after the reboot, not {KERNEL} (check grub)")


def test_gitlab_up_fails_when_gitlab_never_turns_healthy():
    env = "MANAGERS=h1\nGITLAB=h1\n"
    s = parse(env, environ={})
    c = gitlabcmd.container(image=s["GITLAB_IMAGE"], hostname="h1", home=s["GITLAB_HOME"], ports=tuple(s["GITLAB_PORTS"]))
    state = {"Id": "g1", "State": {"Running": True, "Status": "running", "Health": {"Status": "starting"}},
             "Config": {"Labels": {C.SPEC_LABEL: c.spec_hash()}}}
    port = gitlabcmd.host_port(tuple(s["GITLAB_PORTS"]), 22)
    pool = FakePool({F.command_exists("docker"): ("/usr/bin/docker", 0), C.state_fact(gitlabcmd.CONTAINER): (json.dumps(state), 0),
                     gitlabcmd.listeners_fact(port): ("", 0), gitlabcmd.dirs_fact(s["GITLAB_HOME"]): ("", 0)})
    run, out = run_with_clock(pool, env, "gitlab.up", lambda run: run.each(
        run.settings.group("gitlab"), lambda h: TG.up.body.__wrapped__(h, timeout=120)))
    assert failed_with(run, out, "GitLab not healthy after 120s (state running, health starting); see `docker logs gitlab`")
    assert pool.changes() == []
