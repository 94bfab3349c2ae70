"""Day-2 node builders (exact commands, one argument per hostile value) and their parsers, on
what real engines answered (tests/unit/fixtures/engines, recorded by scripts/record-engine-facts.py)."""

import json
import urllib.parse
from pathlib import Path

import pytest

from swarmbook import nodecmd as N

from .recorder import Recorder

FIXTURES = Path(__file__).parent / "fixtures/engines"
ENGINES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.fixture
def rec(tmp_path):
    return Recorder(tmp_path)


def test_node_commands_exact():
    assert N.demote_cmd("n2") == "docker node demote n2"
    assert N.availability_cmd("n2", "drain") == "docker node update --availability drain n2"
    assert N.availability_cmd("n2", "active") == "docker node update --availability active n2"
    assert N.leave_cmd() == "docker swarm leave"  # never --force: a manager must be demoted first
    assert N.remove_cmd("n2") == "docker node rm n2"  # never --force: only a node that is down
    with pytest.raises(ValueError):
        N.availability_cmd("n2", "active; reboot")


def test_node_reads_go_to_the_engine_api():
    assert N.NODE_LIST.command == "curl -sSf --max-time 30 --unix-socket /var/run/docker.sock http://localhost/nodes"
    assert N.SERVICE_STATUS.command.endswith(" 'http://localhost/services?status=true'")
    tasks = N.node_tasks("n2abc")
    assert urllib.parse.unquote(tasks.command.split("filters=", 1)[1]) == '{"node":["n2abc"]}\''
    assert N.STANDALONE.command.endswith(" http://localhost/containers/json")


def test_node_ids_reach_docker_as_one_argument(rec):
    evil = rec.evil
    assert rec.run(N.demote_cmd(evil)) == [["docker", "node", "demote", evil]]
    assert rec.run(N.availability_cmd(evil, "drain")) == [["docker", "node", "update", "--availability", "drain", evil]]
    assert rec.run(N.remove_cmd(evil)) == [["docker", "node", "rm", evil]]
    assert rec.pwned() == []
    tasks = N.node_tasks(evil).command  # the ID is URL-encoded JSON inside one quoted URL
    calls = rec.run(tasks)
    assert len(calls) == 1 and calls[0][0] == "curl" and rec.pwned() == []


@pytest.mark.parametrize("engine", ENGINES)
def test_nodes_parse_from_each_engine(engine):
    text = (FIXTURES / engine / "nodes.out").read_text()
    nodes = N.NODE_LIST.parse(text, 0)
    by_host = {n.hostname: n for n in nodes}
    assert set(by_host) == {"h1", "h2", "h3"}
    h1 = by_host["h1"]
    assert h1.leader and h1.is_manager and h1.reachable and h1.up and h1.availability == "active"
    assert h1.addrs == {"172.29.109.11"} and h1.manager_addr == "172.29.109.11" and h1.where == "172.29.109.11"
    assert N.NODE_LIST.parse("", 7) is None  # not a manager / no engine


def test_a_manager_whose_status_addr_is_zero_is_known_by_its_manager_addr():
    api = [{"ID": "n1", "Spec": {"Role": "manager", "Availability": "active"}, "Description": {"Hostname": "a"},
            "Status": {"State": "ready", "Addr": "0.0.0.0"},
            "ManagerStatus": {"Leader": True, "Reachability": "reachable", "Addr": "[fd00::1]:2377"}}]
    (n,) = N.parse_nodes(api)
    assert n.addrs == {"fd00::1"} and n.where == "fd00::1" and n.leader


@pytest.mark.parametrize("engine", ENGINES)
def test_service_status_parses_from_each_engine(engine):
    text = (FIXTURES / engine / "services.out").read_text()
    services = N.SERVICE_STATUS.parse(text, 0)
    assert services["demo_demo"]["tasks"][1] >= 1 and services["demo_demo"]["updating"] is False


def test_unconverged_names_each_service_that_lacks_tasks():
    ok = {"tasks": (2, 2), "updating": False}
    assert N.unconverged({"a": ok, "zero": {"tasks": (0, 0), "updating": False}}) == []
    assert N.unconverged({"a": ok, "b": {"tasks": (1, 2), "updating": False}}) == ["b 1/2"]
    assert N.unconverged({"a": {"tasks": (2, 2), "updating": True}}) == ["a 2/2 updating"]
    assert N.unconverged({"old": {"tasks": None, "updating": False}}) == ["old ? (engine reports no task counts)"]
    assert N.unconverged(None) == ["(no service list: not a manager?)"]


def test_node_tasks_leave_out_finished_ones():
    api = [{"ID": "t1", "ServiceID": "s", "Status": {"State": "running"}},
           {"ID": "t2", "ServiceID": "s", "Status": {"State": "shutdown"}},
           {"ID": "t3", "ServiceID": "s", "Status": {"State": "preparing"}},
           {"ID": "t4", "ServiceID": "s", "Status": {"State": "failed"}}]
    assert [t["id"] for t in N.node_tasks("n").parse(json.dumps(api), 0)] == ["t1", "t3"]


def test_standalone_containers_are_the_ones_without_a_swarm_task_label():
    api = [{"Names": ["/gitlab"], "Labels": {"swarmbook.spec": "x"}},
           {"Names": ["/demo_demo.1.abc"], "Labels": {N.TASK_LABEL: "t1"}},
           {"Names": ["/kong"], "Labels": None}]
    assert N.STANDALONE.parse(json.dumps(api), 0) == ["gitlab", "kong"]
    assert N.STANDALONE.parse("", 7) is None


def test_unplaced_are_pending_tasks_the_scheduler_found_no_node_for():
    api = [{"ServiceID": "a", "Status": {"State": "pending", "Err": "no suitable node (scheduling constraints "
                                                                      "not satisfied on 3 nodes)"}},
           {"ServiceID": "b", "Status": {"State": "pending", "Err": ""}},
           {"ServiceID": "c", "Status": {"State": "running"}},
           {"ServiceID": "d", "Status": {"State": "rejected", "Err": "no suitable node"}}]
    assert N.parse_unplaced(api) == {"a": "no suitable node (scheduling constraints not satisfied on 3 nodes)"}


def test_pinned_are_services_short_of_tasks_only_for_want_of_a_node():
    services = N.parse_services([
        {"ID": "a", "Spec": {"Name": "portainer"}, "ServiceStatus": {"RunningTasks": 0, "DesiredTasks": 1}},
        {"ID": "b", "Spec": {"Name": "web"}, "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}},
        {"ID": "c", "Spec": {"Name": "api"}, "ServiceStatus": {"RunningTasks": 1, "DesiredTasks": 2}}])
    assert N.pinned(services, {"a": "no suitable node", "b": "no suitable node"}) == {"portainer": "no suitable node"}
    assert N.pinned(services, None) == {} and N.pinned(None, {"a": "x"}) == {}
