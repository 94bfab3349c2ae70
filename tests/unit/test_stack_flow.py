"""stack.deploy's flow against a scripted pool: the runbook's IPVS sysctls go into the stack file
the manager gets when its kernel has IPVS, and stay out (with the reason) when it has none."""

import json

from swarmbook import config, givenup, kernelcmd, stackcmd, taskdef
from swarmbook import nodecmd as N
from swarmbook import facts as F

from .fakes import ABSENT, Clock, FakePool, make_run
from swarmbook.session import Result

OK = Result("", "", 0)
SERVICE = [{"Spec": {"Name": "demo_demo", "TaskTemplate": {"ContainerSpec": {"Image": "r/demo:latest"}}},
            "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 1}}]


def _deploy(tmp_path, ipvs: bool, extra: str = ""):
    import swarmbook.tasks.stack as TS

    (tmp_path / "demo").mkdir(exist_ok=True)
    (tmp_path / "demo" / "deploy.yml").write_text(
        "services:\n  demo:\n    image: r/demo:latest\n    ports: ['9501:9501']\n" + extra)
    (tmp_path / "demo" / "app.env").write_text("APP_NAME=demo\n")
    pool = FakePool({F.file_state("/opt/swarmbook/stacks/demo/deploy.yml", "file"): ABSENT,
                     F.file_state("/opt/swarmbook/stacks/demo/services.json", "snapshot"): ABSENT,
                     stackcmd.configs_fact("demo_env_"): ("[]", 0),
                     stackcmd.services_fact("demo"): (json.dumps(SERVICE), 0),
                     stackcmd.running_tasks_fact(): ("[]", 0),
                     givenup.stack_tasks_fact("demo"): ("[]", 0), N.NODE_LIST: ("[]", 0),
                     kernelcmd.IPVS_FACT: ("", 0 if ipvs else 1)},
                    {r"docker config create": OK, r"cat > \"\$tmp\"": OK, r"docker stack deploy": OK,
                     r"curl -fsS": OK})
    run, out = make_run(pool, f"MANAGERS=h1\nSTACKS_PATH={tmp_path}\n", task="stack.deploy")
    taskdef.execute(TS.deploy.body.swarmbook, run, list(run.settings.group("nodes")), (), {"name": "demo"})
    assert run.failed() == [], out.getvalue()
    (written,) = [stdin for c, stdin in pool.sent if 'cat > "$tmp"' in c and "deploy.yml" in c]
    return stackcmd.yaml.safe_load(written), out.getvalue()


def test_ipvs_sysctls_go_into_the_stack_file_when_the_kernel_has_ipvs(tmp_path):
    doc, text = _deploy(tmp_path, ipvs=True)
    assert doc["services"]["demo"]["sysctls"] == kernelcmd.IPVS_SYSCTLS
    assert "ipvs sysctls: net.ipv4.vs.conn_reuse_mode=0, net.ipv4.vs.expire_nodest_conn=1" in text


def test_a_service_keeps_its_own_sysctl_values(tmp_path):
    doc, _ = _deploy(tmp_path, ipvs=True, extra="    sysctls:\n      - net.ipv4.vs.conn_reuse_mode=1\n")
    assert doc["services"]["demo"]["sysctls"] == {"net.ipv4.vs.conn_reuse_mode": "1",
                                                   "net.ipv4.vs.expire_nodest_conn": "1"}


def test_without_ipvs_the_stack_file_has_no_sysctls_and_says_why(tmp_path):
    doc, text = _deploy(tmp_path, ipvs=False)
    assert "sysctls" not in doc["services"]["demo"]
    assert "ipvs sysctls: left out: this kernel has no IPVS" in text


def test_with_sysctls_takes_list_and_mapping_forms():
    rendered = ("services:\n  a:\n    image: x\n    sysctls: {net.core.somaxconn: 1024}\n"
                "  b:\n    image: y\n    sysctls: ['net.ipv4.vs.expire_nodest_conn=0']\n  c:\n    image: z\n")
    out = stackcmd.yaml.safe_load(stackcmd.with_sysctls(rendered, {"net.ipv4.vs.expire_nodest_conn": "1"}))
    assert out["services"]["a"]["sysctls"] == {"net.ipv4.vs.expire_nodest_conn": "1", "net.core.somaxconn": 1024}
    assert out["services"]["b"]["sysctls"] == {"net.ipv4.vs.expire_nodest_conn": "0"}
    assert out["services"]["c"]["sysctls"] == {"net.ipv4.vs.expire_nodest_conn": "1"}
    assert config.KEYS["STACK_IPVS_SYSCTLS"].choices == ("auto", "off")


def _snapshot_pool(tmp_path, recorded: str | None, running: list, history: list | None = None,
                   nodes: list | None = None, responses: dict | None = None, box: dict | None = None):
    import swarmbook.tasks.stack as TS

    (tmp_path / "demo").mkdir(exist_ok=True)
    (tmp_path / "demo" / "deploy.yml").write_text("services:\n  demo:\n    image: r/demo:latest\n")
    (tmp_path / "demo" / "app.env").write_text("APP_NAME=demo\n")
    values = {"MANAGERS": "h1", "STACKS_PATH": str(tmp_path)}
    run0, _ = make_run(FakePool({}, {}), "".join(f"{k}={v}\n" for k, v in values.items()), task="stack.deploy")
    rendered, _, cfg = TS.render(run0.settings, "demo")
    pool = FakePool({F.file_state("/opt/swarmbook/stacks/demo/deploy.yml", "file"): (f"root root 644\n{rendered}", 0),
                     F.file_state("/opt/swarmbook/stacks/demo/services.json", "snapshot"):
                         (f"root root 600\n{recorded}", 0) if recorded is not None else ABSENT,
                     stackcmd.configs_fact("demo_env_"): (json.dumps([{"Spec": {"Name": cfg}}]), 0),
                     stackcmd.services_fact("demo"): (json.dumps(running), 0),
                     stackcmd.running_tasks_fact(): ("[]", 0),
                     givenup.stack_tasks_fact("demo"): (json.dumps(history or []), 0),
                     N.NODE_LIST: (json.dumps(nodes or []), 0),
                     kernelcmd.IPVS_FACT: ("", 1)},
                    {r"docker stack deploy": OK, r'cat > "\$tmp"': OK, r"curl -fsS": OK, **(responses or {})})
    if box is not None:
        box["pool"] = pool
    clock = Clock()
    run, out = make_run(pool, "".join(f"{k}={v}\n" for k, v in values.items()), task="stack.deploy", clock=clock,
                        sleep=clock.sleep)
    taskdef.execute(TS.deploy.body.swarmbook, run, list(run.settings.group("nodes")), (), {"name": "demo"})
    return pool, run, out.getvalue()


def _svc(labels, mode=None, counts=(1, 1)):
    return [{"ID": "s1", "Spec": {"Name": "demo_demo", "Labels": labels, **({"Mode": mode} if mode else {}),
                                  "TaskTemplate": {"ContainerSpec": {"Image": "r/demo:latest"}}},
             "ServiceStatus": {"RunningTasks": counts[0], "DesiredTasks": counts[1]}}]


def test_a_spec_changed_behind_swarmbooks_back_is_reported_per_field_and_redeployed(tmp_path):
    recorded = stackcmd.snapshot_text(stackcmd.services_by_name(_svc({"swarmbook.registry-auth": "h"})))
    pool, run, out = _snapshot_pool(tmp_path, recorded, _svc({}))
    assert run.failed() == [], out
    assert ("changed      stack.deploy | deploy stack demo: drift: demo_demo: Labels.swarmbook.registry-auth "
            'removed (was "h")') in out
    assert [c for c, _ in pool.sent if c.startswith("docker stack deploy")]


def test_specs_as_recorded_change_nothing(tmp_path):
    running = _svc({"swarmbook.registry-auth": "h"})
    pool, run, out = _snapshot_pool(tmp_path, stackcmd.snapshot_text(stackcmd.services_by_name(running)), running)
    assert run.failed() == [] and "changed" not in out, out
    assert not [c for c, _ in pool.sent if c.startswith("docker stack deploy") or "cat >" in c]


def test_the_first_run_records_the_specs_without_calling_it_a_change(tmp_path):
    pool, run, out = _snapshot_pool(tmp_path, None, _svc({}))
    assert run.failed() == [] and "changed" not in out, out
    ((cmd, recorded),) = [(c, stdin) for c, stdin in pool.sent if "services.json" in c and "cat >" in c]
    assert json.loads(recorded) == {"demo_demo": _svc({})[0]["Spec"]}
    assert "chmod 0600" in cmd


# --- tasks swarm stopped restarting (restart_policy max_attempts used up) ----------------------

def _node(i):
    return {"ID": f"n{i}", "Description": {"Hostname": f"h{i}"}, "Spec": {"Role": "worker", "Availability": "active"},
            "Status": {"State": "ready", "Addr": f"10.0.0.{i}"}}


def _task(node, state, desired, at, err=""):
    return {"ID": f"t-{node}-{at}", "ServiceID": "s1", "NodeID": node, "DesiredState": desired,
            "Status": {"State": state, "Err": err}, "CreatedAt": f"2026-12-02T10:00:{at:02d}.5Z"}


WHY = "cannot create a swarm scoped network when swarm is not active"
HISTORY = [_task("n1", "running", "running", 1), _task("n2", "running", "running", 1),
           *[_task("n3", "rejected", "shutdown", at, WHY) for at in (1, 7, 13, 19, 25)]]


def test_a_global_task_swarm_gave_up_on_is_restarted_and_then_nothing_changes(tmp_path):
    """The drill's rejoined node: five rejections, then no task on h3, while the counts say 2/2."""
    running = _svc({}, mode={"Global": {}}, counts=(2, 2))
    recorded = stackcmd.snapshot_text(stackcmd.services_by_name(running))
    box: dict = {}

    def force(cmd, host):  # swarm makes a task for every node: h3 runs again
        pool = box["pool"]
        pool.facts[givenup.stack_tasks_fact("demo")] = (json.dumps(HISTORY + [_task("n3", "running", "running", 40)]), 0)
        pool.facts[stackcmd.services_fact("demo")] = (json.dumps(_svc({}, mode={"Global": {}}, counts=(3, 3))), 0)
        return OK

    pool, run, out = _snapshot_pool(tmp_path, recorded, running, HISTORY, [_node(i) for i in (1, 2, 3)],
                                    {r"^docker service update --force --detach --quiet demo_demo$": force}, box)
    assert run.failed() == [], out
    assert pool.changes() == ["docker service update --force --detach --quiet demo_demo"]
    assert (f"changed      stack.deploy | restart demo_demo: swarm stopped restarting it (h3: rejected ({WHY}); "
            "restart_policy max_attempts used up): a new task for every slot") in out
    assert not [c for c, _ in pool.sent if c.startswith("docker stack deploy")]  # the spec is as deployed
    pool2, run2, out2 = _snapshot_pool(tmp_path, recorded, _svc({}, mode={"Global": {}}, counts=(3, 3)),
                                       HISTORY + [_task("n3", "running", "running", 40)], [_node(i) for i in (1, 2, 3)])
    assert run2.failed() == [] and pool2.changes() == [] and "changed" not in out2, out2


def test_a_restart_that_gives_up_again_fails_naming_the_node_and_the_error(tmp_path):
    running = _svc({}, mode={"Global": {}}, counts=(2, 2))
    recorded = stackcmd.snapshot_text(stackcmd.services_by_name(running))
    pool, run, out = _snapshot_pool(tmp_path, recorded, running, HISTORY, [_node(i) for i in (1, 2, 3)],
                                    {r"^docker service update --force": OK, r"^docker stack ps": OK})
    assert run.failed() == ["h1"], out
    assert f"stack demo not converged after 180s: demo_demo 2/2; demo_demo: swarm stopped restarting it (h3: rejected ({WHY}))" in out
    assert len([c for c in pool.changes() if "--force" in c]) == 1  # once per run


def test_a_drained_node_or_a_task_still_retrying_is_not_given_up():
    nodes = [N.parse_nodes([_node(1)])[0], N.parse_nodes([{**_node(3), "Spec": {"Role": "worker", "Availability": "drain"}}])[0]]
    services = stackcmd.services_by_name(_svc({}, mode={"Global": {}}))
    history = givenup.parse_tasks(HISTORY)
    assert givenup.given_up(services, history, nodes) == {}  # h3 drained: swarm wants no task there
    retrying = givenup.parse_tasks(HISTORY + [_task("n3", "pending", "ready", 31)])
    assert givenup.given_up(services, retrying, N.parse_nodes([_node(3)])) == {}
    assert givenup.in_progress(services, retrying) == {"demo_demo": 1}


def test_a_replicated_slot_swarm_gave_up_on_counts_only_up_to_the_replicas():
    services = stackcmd.services_by_name(_svc({}, mode={"Replicated": {"Replicas": 2}}, counts=(1, 2)))
    tasks = [{**_task("n1", "running", "running", 1), "Slot": 1},
             {**_task("n2", "failed", "shutdown", 2, "exit 1"), "Slot": 2},
             {**_task("n2", "failed", "shutdown", 3, "exit 1"), "Slot": 3}]  # scaled down from 3: not wanted
    assert givenup.given_up(services, givenup.parse_tasks(tasks), N.parse_nodes([_node(2)])) == {
        "demo_demo": ["slot 2 on h2: failed (exit 1)"]}


def test_task_times_sort_with_fewer_fraction_digits():
    early, late = givenup._when("2026-12-02T10:00:16.303629169Z"), givenup._when("2026-12-02T10:00:16.30363Z")
    assert early < late
