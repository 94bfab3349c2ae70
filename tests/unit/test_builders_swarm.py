import json

import pytest

from swarmbook import config, netcheck, registrycmd, sshdcmd, stackcmd, swarmcmd
from swarmbook.errors import ConfigError


# --- swarm -----------------------------------------------------------------------------
def test_parse_swarm_states():
    assert swarmcmd.parse_swarm(None).state == "unknown"
    inactive = swarmcmd.parse_swarm({"Swarm": {"LocalNodeState": "inactive", "NodeID": ""}})
    assert not inactive.active
    mgr = swarmcmd.parse_swarm({"Swarm": {"LocalNodeState": "active", "NodeID": "n1", "NodeAddr": "10.0.0.1",
                                          "ControlAvailable": True, "Cluster": {"ID": "c1"}}})
    assert mgr.active and mgr.is_manager and mgr.cluster_id == "c1" and mgr.node_addr == "10.0.0.1"


def test_join_keeps_token_out_of_argv():
    cmd = swarmcmd.join_cmd()
    body = json.loads(swarmcmd.join_body("SWMTKN-1-secret", "172.29.100.11", "172.29.100.12"))
    assert "SWMTKN" not in cmd and "--data-binary @-" in cmd and "/swarm/join" in cmd
    assert body == {"ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "172.29.100.12",
                    "RemoteAddrs": ["172.29.100.11:2377"], "JoinToken": "SWMTKN-1-secret"}


def test_init_cmd_quotes_advertise_address():
    assert swarmcmd.init_cmd("eth0;reboot") == "docker swarm init --advertise-addr 'eth0;reboot'"


def test_node_ids_strip_self_marker():
    assert swarmcmd.node_ls_ids([{"ID": "abc *"}, {"ID": "def"}]) == {"abc", "def"}


# --- networks ----------------------------------------------------------------------------
def test_normalize_clears_host_bits_and_warns_on_huge_subnets():
    net, warnings = netcheck.normalize("10.0.0.1/8")
    assert str(net) == "10.0.0.0/8"
    assert any("host bits" in w for w in warnings) and any("state New" in w for w in warnings)
    assert netcheck.normalize("10.1.0.0/16")[1] == []


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "banana", "10.0.0", "300.1.1.1/8"])
def test_normalize_refuses_bad_cidrs(bad):
    with pytest.raises(ConfigError):
        netcheck.normalize(bad)


def test_overlaps_against_networks_and_routes():
    nets = [{"name": "ingress", "subnets": ["10.0.0.0/24"]}, {"name": "default-network", "subnets": ["10.1.0.0/16"]}]
    routes = {"h1": ["172.29.100.11/24", "172.17.0.0/16"]}
    taken = netcheck.taken_by(nets, routes, skip="default-network")
    assert netcheck.overlaps(netcheck.normalize("10.0.0.0/8")[0], taken) == ["network ingress (10.0.0.0/24)"]
    assert netcheck.overlaps(netcheck.normalize("172.29.0.0/16")[0], taken) == ["h1 addresses/routes (172.29.100.0/24)"]
    assert netcheck.overlaps(netcheck.normalize("10.8.0.0/16")[0], taken) == []


def test_parse_routes_from_ip_output():
    text = ("1: lo    inet 127.0.0.1/8 scope host lo\n2: eth0    inet 172.29.100.11/24 brd 172.29.100.255 scope global eth0\n"
            "default via 172.29.100.1 dev eth0\n172.17.0.0/16 dev docker0 proto kernel scope link src 172.17.0.1 linkdown\n")
    assert netcheck.parse_routes(text) == ["127.0.0.1/8", "172.29.100.11/24", "172.17.0.0/16"]


# --- registry ----------------------------------------------------------------------------
def test_login_current_compares_stored_auth():
    auth = registrycmd.expected_auth("u", "pw")
    cfg = json.dumps({"auths": {"registry.lab:5000": {"auth": auth}}})
    assert registrycmd.login_current(cfg, "registry.lab:5000", "u", "pw")
    assert not registrycmd.login_current(cfg, "registry.lab:5000", "u", "new-pw")
    assert not registrycmd.login_current("", "registry.lab:5000", "u", "pw")
    assert not registrycmd.login_current("{broken", "registry.lab:5000", "u", "pw")


def test_login_cmd_reads_password_from_stdin_only():
    assert registrycmd.login_cmd("r:5000", "u") == "docker login --username u --password-stdin r:5000 >/dev/null"
    runner = registrycmd.login_cmd("r:5000", "u", as_user="gitlab-runner")
    assert runner.startswith("su -s /bin/sh -l gitlab-runner -c ") and "--password-stdin" in runner


# --- sshd ----------------------------------------------------------------------------------
def test_sshd_ports_rewrite_before_match_blocks():
    cfg = "#Port 22\nPermitRootLogin yes\nMatch User x\n  Port 99\n"
    assert sshdcmd.ports_in(cfg) == [22]
    both = sshdcmd.with_ports(cfg, [22, 2222])
    assert both.startswith(f"{sshdcmd.MARK}\nPort 22\nPort 2222\n#Port 22\n")
    assert sshdcmd.ports_in(both) == [22, 2222]
    assert sshdcmd.with_ports(both, [2222]).count("Port 2222") == 1 and sshdcmd.ports_in(sshdcmd.with_ports(both, [2222])) == [2222]


def test_sshd_config_is_validated_before_install():
    cmd = sshdcmd.install_config_cmd()
    assert cmd.index("sshd -t -f") < cmd.index("mv -f")
    assert sshdcmd.socket_dropin([22, 2222]) == "[Socket]\nListenStream=\nListenStream=22\nListenStream=2222\n"
    assert sshdcmd.open_port_cmds(2222, selinux=True, firewalld=True, ufw=False)[0].startswith("semanage port -a -t ssh_port_t")


# --- stacks --------------------------------------------------------------------------------
DEMO = open(__file__.rsplit("/tests/", 1)[0] + "/stacks/demo/deploy.yml").read()


def _values(**kw):
    s = config.parse("REGISTRY=registry.lab:5000\nREGISTRY_PASSWORD=hunter22\n", environ={})
    return stackcmd.template_vars(s, "demo", "APP_NAME=demo\n", **kw)


def test_config_name_changes_with_content():
    a, b = stackcmd.config_name("demo", "A=1\n"), stackcmd.config_name("demo", "A=2\n")
    assert a.startswith("demo_env_") and a != b and a == stackcmd.config_name("demo", "A=1\n")


def test_render_demo_ingress_keeps_the_runbook_shape():
    v = _values()
    out = stackcmd.yaml.safe_load(stackcmd.render(DEMO, v, source="deploy.yml"))
    svc = out["services"]["demo"]
    assert svc["image"] == "registry.lab:5000/demo:latest"
    assert svc["ports"] == ["9501:9501"] and svc["deploy"]["replicas"] == 1
    assert svc["configs"] == [{"source": v["ENV_CONFIG"], "target": "/opt/www/.env"}]
    assert out["configs"] == {v["ENV_CONFIG"]: {"external": True}}
    assert "PASSWORD" not in str(v) and "hunter22" not in str(v)


def test_render_host_mode_runs_one_task_per_node():
    v = _values(STACK_PUBLISH_MODE="host", IMAGE_TAG="v2")
    svc = stackcmd.yaml.safe_load(stackcmd.render(DEMO, v, source="x"))["services"]["demo"]
    assert svc["ports"] == [{"target": 9501, "published": 9501, "protocol": "tcp", "mode": "host"}]
    assert svc["deploy"]["mode"] == "global" and "replicas" not in svc["deploy"]
    assert svc["deploy"]["update_config"]["order"] == "stop-first"
    assert svc["deploy"]["rollback_config"]["order"] == "stop-first"
    assert svc["image"].endswith(":v2")


def test_demo_stack_heals_a_bad_update():
    """The demo's healthcheck makes a task count only once it answers; a failed update is rolled back."""
    svc = stackcmd.yaml.safe_load(stackcmd.render(DEMO, _values(), source="x"))["services"]["demo"]
    assert svc["healthcheck"]["test"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9501/"]
    assert svc["deploy"]["update_config"]["failure_action"] == "rollback"
    assert svc["deploy"]["update_config"]["monitor"] == "30s"
    assert svc["deploy"]["update_config"]["parallelism"] == 1


def test_stale_tasks_are_those_made_from_another_container_spec():
    services = {"a_web": {"id": "s1", "container": {"Image": "web:2"}}, "a_db": {"id": "s2", "container": {"Image": "db:1"}}}
    tasks = [{"service": "s1", "state": "running", "container": {"Image": "web:1"}},
             {"service": "s1", "state": "running", "container": {"Image": "web:2"}},
             {"service": "s2", "state": "running", "container": {"Image": "db:1"}},
             {"service": "other", "state": "running", "container": {}}]
    assert stackcmd.stale_tasks(services, tasks) == {"a_web": 1, "a_db": 0}


def test_rollback_builder_and_rolled_back_services():
    assert stackcmd.rollback_cmd("demo_demo") == "docker service update --rollback --detach demo_demo"
    svcs = stackcmd.services_by_name([
        {"ID": "s1", "Spec": {"Name": "a"}, "UpdateStatus": {"State": "rollback_completed", "Message": "why"}},
        {"ID": "s2", "Spec": {"Name": "b"}, "UpdateStatus": {"State": "completed"}, "PreviousSpec": {}},
        {"ID": "s3", "Spec": {"Name": "c"}}])
    assert stackcmd.rolled_back(svcs) == {"a": "why"}
    assert [svcs[n]["update"] for n in "abc"] == ["rollback_completed", "completed", ""]


@pytest.mark.parametrize("template, message", [
    ("services:\n  a:\n    image: ${NOPE}\n", "unknown variable ${NOPE}"),
    ("services: [\n", "not valid YAML"),
    ("version: '3'\n", "needs a 'services:' mapping"),
])
def test_bad_stack_files_are_one_line_errors(template, message):
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace("{", r"\{").replace("}", r"\}")):
        stackcmd.render(template, _values(), source="x.yml")


def test_stack_services_and_configs_from_the_engine_api():
    import json
    import urllib.parse

    fact = stackcmd.services_fact("demo")
    query = urllib.parse.unquote(fact.command.split("?", 1)[1])
    assert "--unix-socket /var/run/docker.sock" in fact.command and "status=true" in query
    assert '"label":["com.docker.stack.namespace=demo"]' in query
    api = [{"Spec": {"Name": "demo_demo", "TaskTemplate": {"ContainerSpec": {"Image": "r/demo:1@sha256:ab"}}},
            "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}},
           {"Spec": {"Name": "demo_db", "TaskTemplate": {"ContainerSpec": {"Image": "mariadb"}}},
            "ServiceStatus": {"RunningTasks": 0, "DesiredTasks": 1}, "UpdateStatus": {"State": "updating"}},
           {"Spec": {"Name": "old_engine", "TaskTemplate": {"ContainerSpec": {"Image": "x"}}}}]
    got = {n: {k: v for k, v in s.items() if k in ("image", "replicas", "updating")}
           for n, s in fact.parse(json.dumps(api), 0).items()}
    assert got == {"demo_demo": {"image": "r/demo:1@sha256:ab", "replicas": (3, 3), "updating": False},
                   "demo_db": {"image": "mariadb", "replicas": (0, 1), "updating": True},
                   "old_engine": {"image": "x", "replicas": None, "updating": False}}
    assert fact.parse("", 7) is None  # engine not answering
    configs = stackcmd.configs_fact("demo_env_")
    assert '"name":["demo_env_"]' in urllib.parse.unquote(configs.command)
    assert configs.parse('[{"ID": "c1", "Spec": {"Name": "demo_env_1a2b"}}]', 0) == {"demo_env_1a2b"}
    assert configs.parse("[]", 0) == set() and configs.parse("", 22) == set()


def test_a_stack_is_converged_when_every_service_runs_all_tasks_and_none_updates():
    from swarmbook.tasks.stack import converged

    ok = {"image": "i", "replicas": (2, 2), "updating": False}
    assert converged({"a": ok, "b": {**ok, "replicas": (1, 1)}})
    assert not converged({"a": ok, "b": {**ok, "replicas": (0, 1)}})
    assert not converged({"a": {**ok, "updating": True}})
    assert not converged({"a": {**ok, "replicas": (0, 0)}})  # scaled to zero never "runs"
    assert not converged({"a": {**ok, "replicas": None}}) and not converged({}) and not converged(None)


def test_service_labels_merge_into_list_or_mapping_labels():
    text = ("services:\n  a:\n    image: x\n    deploy:\n      labels: [\"keep=1\", \"flag\"]\n"
            "  b:\n    image: y\n    deploy:\n      labels: {keep: '2'}\n  c:\n    image: z\n")
    out = stackcmd.yaml.safe_load(stackcmd.with_service_labels(
        text, lambda key, svc: {} if key == "c" else {"l": f"{key}-{svc['image']}"}))
    assert out["services"]["a"]["deploy"]["labels"] == {"keep": "1", "flag": "", "l": "a-x"}
    assert out["services"]["b"]["deploy"]["labels"] == {"keep": "2", "l": "b-y"}
    assert "deploy" not in out["services"]["c"]


def test_stack_deploy_stamps_the_registry_auth_mark_refresh_auth_reads(tmp_path):
    import swarmbook.tasks.stack as TS
    from swarmbook import registrycmd

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "deploy.yml").write_text(DEMO)
    (tmp_path / "demo" / "app.env").write_text("APP_NAME=demo\n")
    env = (f"MANAGERS=h1\nREGISTRY=registry.lab:5000\nREGISTRY_USER=ci\nREGISTRY_PASSWORD=hunter22\n"
           f"STACKS_PATH={tmp_path}\n")
    rendered, _, _ = TS.render(config.parse(env, environ={}), "demo")
    labels = stackcmd.yaml.safe_load(rendered)["services"]["demo"]["deploy"]["labels"]
    assert labels == {registrycmd.AUTH_LABEL: registrycmd.auth_mark("registry.lab:5000", "ci", "hunter22", "demo_demo")}
    assert "hunter22" not in rendered
    other, _, _ = TS.render(config.parse(env.replace("hunter22", "hunter23"), environ={}), "demo")
    assert other != rendered  # a new password redeploys, which refreshes the stored auth


def test_sshd_restart_clears_the_start_rate_limit_first():
    for socket_activated in (False, True):
        cmd = sshdcmd.restart_cmd(socket_activated)
        assert cmd.index("reset-failed") < cmd.index("restart ")


def test_doctor_engine_skew_says_what_it_risks():
    from swarmbook.doctorcmd import engine_skew

    same = {"h1": "28.5.2+dfsg4 (API 1.51)", "h2": "28.1.0 (API 1.49)"}
    assert engine_skew(same, {"h1"}) is None
    mixed = {"h1": "20.10.24+dfsg1 (API 1.41)", "h2": "26.1.5+dfsg1 (API 1.45)", "h3": "28.5.2+dfsg4 (API 1.51)"}
    c = engine_skew(mixed, {"h1"})
    assert c.level == "warn" and c.name == "engine skew" and c.host == "(cluster)"
    assert "h1 20.10.24+dfsg1 (API 1.41) manager" in c.detail and "a worker is newer than a manager" in c.detail
    assert "API versions 1.41, 1.45, 1.51" in c.detail and "managers first" in c.detail
    upgraded_first = engine_skew({"h1": "28.5.2 (API 1.51)", "h2": "26.1.5 (API 1.45)"}, {"h1"})
    assert "more than one major" in upgraded_first.detail  # 28 vs 26
    assert "more than one major" not in engine_skew({"h1": "27.1.0 (API 1.46)", "h2": "26.1.5 (API 1.45)"}, {"h1"}).detail
