"""Every verify step of docker.*, net.recreate-ingress, stack.deploy and sshd.move-port, made to
fail: the host is reported failed, with the reason (scripted SSH pool, fake clock)."""

import json

import pytest
import swarmbook.tasks.docker as TD
import swarmbook.tasks.net as TN
import swarmbook.tasks.sshd as TSSHD
import swarmbook.tasks.stack as TSTACK
from swarmbook import envfile, givenup, kernelcmd, netcheck, sshdcmd, stackcmd, taskdef
from swarmbook import nodecmd as N
from swarmbook import dockercmd as D
from swarmbook import facts as F
from swarmbook.session import ConnectFailed, Result

from .fakes import ABSENT, Clock, FakePool, make_run

OK = Result("", "", 0)


def run_host_task(pool, body, env="MANAGERS=h1\n", **kw):
    clock = Clock()
    run, out = make_run(pool, env, task="t.verify", clock=clock, sleep=clock.sleep)
    run.each(run.settings.group("managers"), lambda h: body(h, **kw))
    return run, out.getvalue()


def failed_with(run, out, reason):
    return run.failed() == ["h1"] and f"failed: {reason}" in out


# --- docker.* ------------------------------------------------------------------------------------

FRESH_DEBIAN = {F.OS_RELEASE: ("ID=debian\n", 0), F.command_exists("dockerd"): ("", 1),
                F.command_exists("docker"): ("", 1), F.command_exists("curl"): ("/usr/bin/curl", 0),
                F.unit_state("docker"): ("ActiveState=inactive\nUnitFileState=\n", 0), F.user_groups("root"): ("root", 0),
                F.apt_versions(["docker.io", D.DEBIAN_CLI]):
                    ("   docker.io | 20.10.24+dfsg1-1+deb12u1 | http://deb.debian.org/debian bookworm/main amd64 Packages\n", 0)}


def test_install_fails_when_the_new_engine_does_not_answer():
    pool = FakePool(FRESH_DEBIAN, {r"apt-get install": OK, r"enable --now docker": OK,
                                   r"^docker version": Result("", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n", 1)})
    run, out = run_host_task(pool, TD.install.body.__wrapped__, method="distro")
    assert failed_with(run, out, "verify docker: Cannot connect to the Docker daemon at unix:///var/run/docker.sock (exit 1)")
    assert "docker answers" not in out


def test_mirrors_fail_when_the_restarted_engine_does_not_list_them():
    pool = FakePool({F.command_exists("dockerd"): ("/usr/bin/dockerd", 0),
                     F.file_state(D.DAEMON_JSON, "daemon"): ('root root 644\n{"log-driver": "journald"}', 0),
                     F.docker_info(): ABSENT},
                    {r"dockerd --validate": OK, r"^docker info": Result('["https://other.lab/"]\n', "", 0)})
    run, out = run_host_task(pool, TD.mirrors.body.__wrapped__, mirrors="https://m.lab:5001")
    assert failed_with(run, out, "verify mirrors: docker info does not list https://m.lab:5001")


def test_tcp_fails_when_the_api_does_not_answer_from_here(monkeypatch):
    unit = "# /lib/systemd/system/docker.service\n[Service]\nExecStart=/usr/bin/dockerd -H fd://\n"
    tls = {F.file_state(f"{D.TLS_DIR}/{n}", n): ABSENT for n in ("ca.pem", "server-cert.pem", "server-key.pem")}
    pool = FakePool({F.unit_file("docker.service", "unit"): (unit, 0), F.file_state(D.DAEMON_JSON, "daemon"): ABSENT,
                     F.file_state(D.TCP_DROPIN, "dropin"): ABSENT, **tls,
                     F.unit_stale("docker", [D.DAEMON_JSON, D.TCP_DROPIN]): ABSENT},
                    {r"swarmbook-tcp.conf": OK})
    asked = []
    monkeypatch.setattr(TD, "_answers", lambda host, port, tls_dir: asked.append((host, port)) and False)
    run, out = run_host_task(pool, TD.tcp.body.__wrapped__, insecure=True, bind="10.0.0.5")
    assert failed_with(run, out, "verify docker API: no answer on h1:2375 from this machine")
    assert asked and set(asked) == {("h1", 2375)} and "docker API answers" not in out


# --- net.recreate-ingress --------------------------------------------------------------------------

def test_recreate_ingress_fails_when_the_new_ingress_has_another_subnet():
    nets = json.dumps([{"Name": "ingress", "Id": "i1", "Ingress": True, "Options": {},
                        "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}]}}])
    pool = FakePool({netcheck.ROUTES: ("", 0), netcheck.NETWORKS: (nets, 0), netcheck.INGRESS_USERS: ("", 0)},
                    {r"network rm .* && .*network create": OK,
                     r"^docker network inspect --format '\{\{range": Result("10.0.0.0/24\n", "", 0)})
    run, out = make_run(pool, "MANAGERS=h1\n", task="net.recreate-ingress")
    TN.recreate_ingress.body.__wrapped__(run, run.settings.group("managers"), subnet="192.168.0.0/16", yes=True)
    assert failed_with(run, out.getvalue(), "verify ingress: ingress subnet is '10.0.0.0/24', expected 192.168.0.0/16")


# --- stack.deploy ----------------------------------------------------------------------------------

def _stack_pool(tmp_path, services, responses, tasks="[]", history="[]", nodes="[]"):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "deploy.yml").write_text("services:\n  demo:\n    image: r/demo:latest\n    ports: ['9501:9501']\n")
    (tmp_path / "demo" / "app.env").write_text("APP_NAME=demo\n")
    return FakePool({F.file_state("/opt/swarmbook/stacks/demo/deploy.yml", "file"): ABSENT,
                     F.file_state("/opt/swarmbook/stacks/demo/services.json", "snapshot"): ABSENT,
                     stackcmd.configs_fact("demo_env_"): ("[]", 0), stackcmd.services_fact("demo"): (services, 0),
                     stackcmd.running_tasks_fact(): (tasks, 0), kernelcmd.IPVS_FACT: ("", 1),
                     givenup.stack_tasks_fact("demo"): (history, 0), N.NODE_LIST: (nodes, 0)},
                    {r"docker config create": OK, r"cat > \"\$tmp\"": OK, r"docker stack deploy": OK, **responses})


def _deploy(pool, tmp_path, env="MANAGERS=h1\n"):
    clock = Clock()
    run, out = make_run(pool, f"{env}STACKS_PATH={tmp_path}\n", task="stack.deploy", clock=clock, sleep=clock.sleep)
    taskdef.execute(TSTACK.deploy.body.swarmbook, run, list(run.settings.group("nodes")), (), {"name": "demo"})
    return run, out.getvalue()


def _services(running):
    return json.dumps([{"Spec": {"Name": "demo_demo", "TaskTemplate": {"ContainerSpec": {"Image": "r/demo:latest"}}},
                        "ServiceStatus": {"RunningTasks": running, "DesiredTasks": 1}}])


def test_deploy_fails_on_a_node_where_the_published_port_does_not_answer(tmp_path):
    pool = _stack_pool(tmp_path, _services(1), {r"^curl -fsS -m 5 http://127.0.0.1:9501/$":
                                                lambda cmd, host: OK if host == "h1" else Result("", "refused", 7)})
    run, out = _deploy(pool, tmp_path, env="MANAGERS=h1\nWORKERS=h2\n")
    assert run.failed() == ["h2"] and "failed: HTTP http://127.0.0.1:9501/: not ready after 180s" in out
    assert "h1               ok           stack.deploy | HTTP 9501 answers" in out


def test_deploy_fails_naming_the_tasks_when_the_stack_does_not_converge(tmp_path):
    pool = _stack_pool(tmp_path, _services(0), {
        r"^docker stack ps": Result("demo_demo.1 Rejected 3 seconds ago No such image: r/demo:latest\n", "", 0)})
    run, out = _deploy(pool, tmp_path)
    assert failed_with(run, out, "stack demo not converged after 180s: demo_demo 0/1; "
                                 "demo_demo.1 Rejected 3 seconds ago No such image: r/demo:latest")
    assert not [c for c, _ in pool.sent if c.startswith("curl")]  # no HTTP check of a stack that is not up


# --- sshd.move-port --------------------------------------------------------------------------------

class SshHosts(FakePool):
    """h1's sshd on port 22; a fresh login on the new port works only if ``new_port_answers``."""

    def __init__(self, *, socket_activated, new_port_answers):
        env = f"socket={'active' if socket_activated else 'inactive'}\nselinux=\nfirewalld=inactive\nufw=\n"
        super().__init__({F.file_state(sshdcmd.CONFIG, "cfg"): ("root root 644\nPermitRootLogin prohibit-password\n", 0),
                          sshdcmd.ENV: (env, 0)},
                         {r"sshd -t -f": OK, r"(?s)^if \[ -f /etc/ssh/sshd_config\.swarmbook\.bak \].*restart": OK,
                          r"^true$": OK})
        self.new_port_answers = new_port_answers
        self.logins = []

    def connect(self, spec, *, fresh=False, **kw):
        if fresh:
            self.logins.append(spec.port)
            if spec.port == 2222 and not self.new_port_answers:
                raise ConnectFailed("cannot connect to root@h1:2222: [Errno 111] Connection refused")
        return super().connect(spec, fresh=fresh, **kw)


def test_move_port_rolls_back_and_fails_when_the_new_port_refuses_a_login():
    pool = SshHosts(socket_activated=True, new_port_answers=False)
    run, out = run_host_task(pool, TSSHD.move_port.body.__wrapped__, port=2222)
    assert failed_with(run, out, "login on the new port failed (cannot connect to root@h1:2222: [Errno 111] "
                                 "Connection refused); previous sshd config restored, port 22 answers")
    applied, rollback = pool.changes()[:2]
    assert applied == sshdcmd.apply_cmd([22, 2222], socket_activated=True, selinux=False, firewalld=False, ufw=False)
    assert rollback == sshdcmd.rollback_cmd(22, socket_activated=True)  # the drop-in back on 22, written atomically
    assert pool.logins == [2222, 22] and "Port 22\nPort 2222\n" in dict(pool.sent)[applied]


def test_move_port_drops_the_old_port_only_after_a_login_on_the_new_one(monkeypatch):
    recorded = []
    monkeypatch.setattr(envfile, "record_port", lambda path, host, port: recorded.append((host, port)) or True)
    pool = SshHosts(socket_activated=False, new_port_answers=True)
    run, out = run_host_task(pool, TSSHD.move_port.body.__wrapped__, port=2222)
    assert run.failed() == [] and "sshd port 22 -> 2222" in out and recorded == [("h1", 2222)]
    both, new_only = [stdin for c, stdin in pool.sent if "sshd -t" in c]
    assert both.startswith(f"{sshdcmd.MARK}\nPort 22\nPort 2222\n")
    assert new_only.startswith(f"{sshdcmd.MARK}\nPort 2222\nPermitRootLogin")
    assert pool.logins == [2222, 2222]  # verified after each config, on the new port
    assert not [c for c in pool.changes() if c.startswith("if [ -f /etc/ssh/sshd_config.swarmbook.bak ]")]  # no rollback


def _service(update=None, previous=True, image="r/demo:latest"):
    svc = {"ID": "s1", "Spec": {"Name": "demo_demo", "TaskTemplate": {"ContainerSpec": {"Image": image}}},
           "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1}}
    if update:
        svc["UpdateStatus"] = {"State": update, "Message": "update rolled back due to failure or early termination of task x"}
    if previous:
        svc["PreviousSpec"] = {"Name": "demo_demo"}
    return json.dumps([svc])


def test_deploy_fails_when_swarm_rolled_the_update_back(tmp_path):
    """update_config.failure_action: rollback: the stack converges, on the old spec; the run must
    say so and fail, not report the deployed file as running."""
    pool = _stack_pool(tmp_path, _service("rollback_completed", image="r/demo:old"), {})
    run, out = _deploy(pool, tmp_path)
    assert failed_with(run, out, "stack demo: demo_demo was rolled back (update rolled back due to failure or early "
                                 "termination of task x): r/demo:old serves, not the deployed file")
    assert [c for c, _ in pool.sent if c.startswith("docker stack deploy")]  # rolled back: deployed again
    assert not [c for c, _ in pool.sent if c.startswith("curl")]


def test_deploy_waits_while_tasks_run_an_older_spec(tmp_path):
    """Counts say 1/1 and no update is flagged (swarm resets UpdateStatus on a new spec), but the
    running task was made from another ContainerSpec: not converged."""
    old_task = json.dumps([{"ServiceID": "s1", "Status": {"State": "running"},
                            "Spec": {"ContainerSpec": {"Image": "r/demo:old"}}}])
    pool = _stack_pool(tmp_path, _service(), {r"^docker stack ps": Result("demo_demo.1 Running 1 minute ago \n", "", 0)},
                       tasks=old_task)
    run, out = _deploy(pool, tmp_path)
    assert failed_with(run, out, "stack demo not converged after 180s: demo_demo 1/1")


def _rollback(pool):
    clock = Clock()
    run, out = make_run(pool, "MANAGERS=h1\n", task="stack.rollback", clock=clock, sleep=clock.sleep)
    taskdef.execute(TSTACK.rollback.body.swarmbook, run, list(run.settings.group("managers")), (), {"name": "demo"})
    return run, out.getvalue()


def test_rollback_returns_services_to_their_previous_spec_and_waits():
    pool = FakePool({stackcmd.services_fact("demo"): (_service("completed"), 0),
                     stackcmd.running_tasks_fact(): ("[]", 0)},
                    {r"^docker service update --rollback --detach demo_demo$": OK})
    run, out = _rollback(pool)
    assert run.failed() == [] and "changed      stack.rollback | rollback demo_demo: from r/demo:latest" in out, out
    assert "ok           stack.rollback | stack demo running: demo_demo 1/1" in out


@pytest.mark.parametrize("update, previous, said", [
    ("rollback_completed", True, "already rolled back: r/demo:latest"),
    ("completed", False, "no previous spec to return to"),
])
def test_rollback_twice_changes_nothing(update, previous, said):
    """A second rollback would swap back to the spec just left: it is reported, not sent."""
    pool = FakePool({stackcmd.services_fact("demo"): (_service(update, previous), 0)}, {})
    run, out = _rollback(pool)
    assert run.failed() == [] and said in out and not [c for c, _ in pool.sent if "--rollback" in c], out
