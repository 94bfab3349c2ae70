"""swarm.init membership and node.drain / node.activate with a scripted pool: the exact commands
sent, on which host, in which order; what is reported under which host; refusals before any
change; check mode sends nothing. Each node answers its own docker info (FakePool hosts=);
a command's response may change what the manager reports next (the cluster moving on)."""

import json
import re

import pytest

import swarmbook.tasks.node as TN
import swarmbook.tasks.swarm as TS
from swarmbook import facts as F
from swarmbook import nodecmd as N
from swarmbook import swarmcmd as S
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import ABSENT, Clock, FakePool, make_run

OK = Result("", "", 0)
LEAD = "10.0.0.1"
ENV = f"MANAGERS={LEAD}\nWORKERS=10.0.0.2,10.0.0.3\n"
TOKENS = json.dumps({"ID": "c1", "JoinTokens": {"Worker": "SWMTKN-w", "Manager": "SWMTKN-m"}})


def info(i, manager, state="active"):
    swarm = {"LocalNodeState": state, "NodeID": f"n{i}" if state == "active" else "", "NodeAddr": f"10.0.0.{i}",
             "ControlAvailable": manager, "Cluster": {"ID": "c1"}}
    return json.dumps({"Name": f"h{i}", "Swarm": swarm}), 0


def api_node(i, manager, *, state="ready", reach="reachable", avail="active"):
    n = {"ID": f"n{i}", "Description": {"Hostname": f"h{i}"},
         "Spec": {"Role": "manager" if manager else "worker", "Availability": avail},
         "Status": {"State": state, "Addr": f"10.0.0.{i}"}}
    if manager:
        n["ManagerStatus"] = {"Leader": i == 1, "Reachability": reach, "Addr": f"10.0.0.{i}:2377"}
    return n


def node_list(*nodes):
    return json.dumps(list(nodes)), 0


def cli_nodes(*ids):
    return "\n".join(json.dumps({"ID": f"n{i}", "Hostname": f"h{i}", "Status": "Ready"}) for i in ids), 0


def cluster(roles: dict[int, bool], *, extra=(), docker=None):
    """A pool for a swarm whose node i is a manager when roles[i]; ``extra`` are more API nodes."""
    hosts = {f"10.0.0.{i}": {F.docker_info(): (docker or {}).get(i, info(i, m)),
                             S.advertise_fact(LEAD): (f"10.0.0.{i}", 0)} for i, m in roles.items()}
    api = [api_node(i, m) for i, m in roles.items()] + list(extra)
    shared = {S.TOKENS: (TOKENS, 0), S.NODES: cli_nodes(*roles, *(int(n["ID"][1:]) for n in extra)),
              N.NODE_LIST: node_list(*api)}
    return FakePool(shared, hosts=hosts)


def init(pool, env=ENV, **kw):
    clock = Clock()
    run, out = make_run(pool, env, task="swarm.init", clock=clock, sleep=clock.sleep, check=kw.pop("check", False))
    TS.init.body.__wrapped__(run, run.settings.group("nodes"), **kw)
    return run, out


def steps(out, status=None):
    return [(e["host"], e["step"]) for e in map(json.loads, filter(None, out.splitlines()))
            if e.get("event") == "step" and (status is None or e["status"] == status)]


def init_json(pool, env=ENV, **kw):
    clock = Clock()
    run, out = make_run(pool, env, task="swarm.init", json_lines=True, check=kw.pop("check", False),
                        clock=clock, sleep=clock.sleep)
    TS.init.body.__wrapped__(run, run.settings.group("nodes"), **kw)
    return run, out.getvalue()


def test_no_op_is_one_round_trip_per_host():
    pool = cluster({1: True, 2: False, 3: False})
    run, _ = init(pool)
    assert run.failed() == [] and pool.changes() == []
    assert pool.commands_run == 3, pool.sent  # the leader's tokens and nodes came with its first probe


def test_a_new_swarm_init_then_joins_and_touches_no_role():
    """The leader's node ID is learnt after its init: the roles phase must not take the new
    leader for a stranger at its own address (it once demoted it as a stale entry)."""
    pool = cluster({1: True, 2: False, 3: False})
    for i in (1, 2, 3):
        pool.host_facts[f"10.0.0.{i}"][F.docker_info()] = info(i, False, state="inactive")
    joined = []

    def init_(command, host):
        pool.host_facts[host][F.docker_info()] = info(1, True)
        return OK

    def join(command, host):
        i = int(host[-1])
        pool.host_facts[host][F.docker_info()] = info(i, False)
        joined.append(api_node(i, False))
        pool.facts[N.NODE_LIST] = node_list(api_node(1, True), *joined)
        return OK

    pool.facts[N.NODE_LIST] = node_list(api_node(1, True))
    pool.responses = {r"^docker swarm init --advertise-addr 10\.0\.0\.1$": init_, r"/swarm/join$": join}
    run, out = init_json(pool)
    assert run.failed() == [], out
    assert sorted(steps(out, "changed")) == [(LEAD, "swarm init"), ("10.0.0.2", "join as worker"),
                                             ("10.0.0.3", "join as worker")]


def test_role_drift_demotes_the_listed_workers_and_says_so():
    """Measured: h2 and h3 listed as WORKERS while both were managers; swarm.init said
    "swarm worker: already in this swarm" and changed nothing."""
    pool = cluster({1: True, 2: True, 3: True})
    pool.responses = {r"^docker node demote n[23]$": OK}
    run, out = init_json(pool)
    assert run.failed() == [] and pool.changes() == ["docker node demote n2", "docker node demote n3"]
    assert all(c.host == LEAD for c, cmd in pool.on if "demote" in cmd)  # run on the manager
    assert steps(out, "changed") == [("10.0.0.2", "demote to worker"), ("10.0.0.3", "demote to worker")]
    assert "already in this swarm" not in out and ("10.0.0.2", "swarm worker") not in steps(out)


def test_after_the_demotions_a_rerun_changes_nothing():
    pool = cluster({1: True, 2: False, 3: False})
    run, out = init_json(pool)
    assert pool.changes() == [] and steps(out, "changed") == []
    assert ("10.0.0.2", "swarm worker") in steps(out, "ok") and ("10.0.0.3", "swarm worker") in steps(out, "ok")


def test_promote_before_demote_and_wait_until_the_new_manager_is_reachable():
    pool = cluster({1: True, 2: True, 3: False})
    promoted = node_list(api_node(1, True), api_node(2, True), api_node(3, True, reach="unknown"))
    reachable = node_list(api_node(1, True), api_node(2, True), api_node(3, True))

    def promote(command, host):  # the new manager needs a moment before it is a reachable vote
        pool.facts[N.NODE_LIST] = promoted
        return OK

    seen = []

    def demote(command, host):
        seen.append(command)
        return OK

    pool.responses = {r"^docker node promote n3$": promote, r"^docker node demote n2$": demote}
    run, out = make_run(pool, f"MANAGERS={LEAD},10.0.0.3\nWORKERS=10.0.0.2\n", task="swarm.init", json_lines=True)
    clock = Clock()
    run.clock, run.sleep = clock, lambda s: (clock.sleep(s), pool.facts.__setitem__(N.NODE_LIST, reachable))
    TS.init.body.__wrapped__(run, run.settings.group("nodes"))
    assert run.failed() == [] and pool.changes() == ["docker node promote n3", "docker node demote n2"]
    assert clock.now >= 1  # it waited for n3 to become reachable before demoting n2
    text = out.getvalue()
    assert steps(text, "changed") == [("10.0.0.3", "promote to manager"), ("10.0.0.2", "demote to worker")]
    assert "2 managers: an even number adds no fault tolerance (use 1 or 3)" in text


def test_a_host_that_lost_its_swarm_state_joins_again_and_its_old_entry_is_removed():
    old = api_node(2, False, state="down")
    pool = cluster({1: True, 3: False}, extra=[old])
    pool.host_facts["10.0.0.2"] = type(pool.facts)({F.docker_info(): info(2, False, state="inactive"),
                                                    S.advertise_fact(LEAD): ("10.0.0.2", 0)})

    def join(command, host):
        pool.host_facts[host][F.docker_info()] = (info(2, False)[0].replace('"n2"', '"n2new"'), 0)
        new = dict(api_node(2, False), ID="n2new")
        pool.facts[N.NODE_LIST] = node_list(api_node(1, True), api_node(3, False), old, new)
        return OK

    pool.responses = {r"/swarm/join$": join, r"^docker node rm --force n2$": OK}
    run, out = init_json(pool)
    assert run.failed() == [], out
    assert [(c.host, cmd) for c, cmd in pool.on if "@@" not in cmd] == [
        ("10.0.0.2", S.join_cmd()), (LEAD, "docker node rm --force n2")]
    assert steps(out, "changed") == [("10.0.0.2", "join as worker"), ("10.0.0.2", "remove stale node entry n2 (h2)")]
    assert "SWMTKN" not in out


def test_after_a_restore_onto_another_manager_the_first_joins_it_and_makes_no_second_swarm():
    """Every manager lost, swarm.restore put the state back on h3 (where the backup was taken):
    h1, listed first, is in no swarm. swarm.init must join h1 and h2 to h3's swarm (an init on
    h1 would split the cluster in two); the rejoined hosts get their old entries' labels, then
    the old entries (manager role, outside raft, down) are removed."""
    old = [dict(api_node(i, True, state="down"), ID=f"old{i}", Spec={"Role": "manager", "Availability": "active",
                                                                    "Labels": {"k": f"v{i}"}}) for i in (1, 2)]
    for o in old:
        del o["ManagerStatus"]  # --force-new-cluster dropped them from raft
    restored = api_node(3, True)
    restored["ManagerStatus"]["Leader"] = True
    pool = cluster({1: True, 2: True, 3: True})
    for i in (1, 2):
        pool.host_facts[f"10.0.0.{i}"][F.docker_info()] = info(i, False, state="inactive")
    pool.facts[N.NODE_LIST] = node_list(*old, restored)
    joined = []

    def join(command, host):
        i = int(host[-1])
        pool.host_facts[host][F.docker_info()] = info(i, True)
        joined.append(api_node(i, True))
        pool.facts[N.NODE_LIST] = node_list(*old, restored, *joined)
        return OK

    pool.responses = {r"/swarm/join$": join,
                      r"^docker node update --label-add k=v[12] n[12]$": OK, r"^docker node rm --force old[12]$": OK}
    run, out = init_json(pool, f"MANAGERS={LEAD},10.0.0.2,10.0.0.3\n")
    assert run.failed() == [], out
    assert not [c for c in pool.changes() if "swarm init" in c]
    bodies = [json.loads(stdin) for c, stdin in pool.sent if c == S.join_cmd()]
    assert [b["RemoteAddrs"] for b in bodies] == [["10.0.0.3:2377"]] * 2 and [b["JoinToken"] for b in bodies] == \
        ["SWMTKN-m"] * 2
    assert sorted(c for c in pool.changes() if c != S.join_cmd()) == [  # no demotion: Docker refuses it outside raft
        "docker node rm --force old1",
        "docker node rm --force old2", "docker node update --label-add k=v1 n1", "docker node update --label-add k=v2 n2"]
    assert "10.0.0.1 is not a manager of a swarm and 10.0.0.3 is" in out


def test_quorum_guard_refuses_before_anything_changes():
    """h3, a manager, is down (its engine does not answer): demoting h2 would leave 1 of 2."""
    down = api_node(3, True, state="down", reach="unreachable")
    pool = cluster({1: True, 2: True}, extra=[down])
    pool.host_facts["10.0.0.3"] = type(pool.facts)({F.docker_info(): ABSENT, S.advertise_fact(LEAD): ABSENT})
    with pytest.raises(ConfigError, match=r"demoting 10\.0\.0\.2 would leave 1 of 2 managers reachable"):
        init(pool, f"MANAGERS={LEAD},10.0.0.3\nWORKERS=10.0.0.2\n")
    assert pool.changes() == []


def test_a_node_the_file_does_not_list_is_reported_and_left_alone():
    pool = cluster({1: True, 2: False, 3: False}, extra=[api_node(4, False)])
    run, out = init_json(pool)
    assert pool.changes() == [] and run.failed() == []
    assert "node h4 (10.0.0.4, worker, ready) is in the swarm but not in MANAGERS/WORKERS: " \
           "swarm.init --prune --yes removes it" in out


def test_prune_drains_waits_leaves_and_removes_the_unlisted_node():
    pool = cluster({1: True, 2: False, 3: False, 4: False})
    pool.facts[N.node_tasks("n4")] = ("[]", 0)
    pool.facts[N.UNPLACED] = ("[]", 0)
    pool.facts[N.SERVICE_STATUS] = (json.dumps([{"Spec": {"Name": "web"},
                                                 "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}}]), 0)

    def leave(command, host):
        pool.facts[N.NODE_LIST] = node_list(api_node(1, True), api_node(2, False), api_node(3, False),
                                            api_node(4, False, state="down", avail="drain"))
        return OK

    pool.responses = {r"^docker node update --availability drain n4$": OK, r"^docker swarm leave$": leave,
                      r"^docker node rm n4$": OK}
    run, out = init_json(pool, prune=True, yes=True, timeout=60)
    assert run.failed() == [], out
    assert [(c.host, cmd) for c, cmd in pool.on if "@@" not in cmd] == [
        (LEAD, "docker node update --availability drain n4"),
        ("10.0.0.4", "docker swarm leave"),
        (LEAD, "docker node rm n4")]
    assert steps(out, "changed") == [("10.0.0.4", "drain"), ("10.0.0.4", "leave the swarm"),
                                     ("10.0.0.4", "remove node")]
    assert ("10.0.0.4", "tasks moved") in steps(out, "ok")


def test_prune_of_a_node_that_is_down_removes_it_without_asking_it_to_leave():
    dead = api_node(4, False, state="down")
    pool = cluster({1: True, 2: False, 3: False}, extra=[dead])
    pool.facts[N.node_tasks("n4")] = (json.dumps([{"ID": "t", "Status": {"State": "running"}}]), 0)  # never updated
    pool.facts[N.UNPLACED] = ("[]", 0)
    pool.facts[N.SERVICE_STATUS] = (json.dumps([{"Spec": {"Name": "web"},
                                                 "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}}]), 0)
    pool.responses = {r"^docker node update --availability drain n4$": OK, r"^docker node rm n4$": OK}
    run, out = init_json(pool, prune=True, yes=True)
    assert run.failed() == [], out
    assert pool.changes() == ["docker node update --availability drain n4", "docker node rm n4"]
    assert "10.0.0.4" not in {c.host for c, _ in pool.on}  # never contacted


def test_prune_in_check_mode_sends_no_change():
    pool = cluster({1: True, 2: False, 3: False}, extra=[api_node(4, True)])
    pool.host_facts["10.0.0.4"] = type(pool.facts)({F.docker_info(): info(4, True)})
    run, out = init_json(pool, prune=True, yes=True, check=True)
    assert pool.changes() == [] and run.failed() == []
    assert steps(out, "changed") == [("10.0.0.4", "demote to worker"), ("10.0.0.4", "drain"),
                                     ("10.0.0.4", "leave the swarm"), ("10.0.0.4", "remove node")]


def test_prune_without_yes_is_refused_by_the_validator():
    from swarmbook.config import parse

    with pytest.raises(ConfigError, match="add --yes"):
        TS._validate(parse(ENV, environ={}), prune=True)
    TS._validate(parse(ENV, environ={}), prune=True, yes=True)


# --- node.drain / node.activate ----------------------------------------------------------------

def maintenance(nodes, *, tasks_on=(), services=None, standalone=None, unplaced=None):
    services = services or [{"Spec": {"Name": "web"}, "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}}]
    facts = {N.NODE_LIST: node_list(*nodes), N.SERVICE_STATUS: (json.dumps(services), 0)}
    for i in range(1, len(nodes) + 1):
        facts[N.node_tasks(f"n{i}")] = ("[]", 0)
    containers = standalone if standalone is not None else [
        {"Names": ["/gitlab"], "Labels": {}}, {"Names": ["/web.1.x"], "Labels": {N.TASK_LABEL: "t"}}]
    facts[N.STANDALONE] = (json.dumps(containers), 0)
    facts[N.UNPLACED] = (json.dumps(unplaced or []), 0)
    return FakePool(facts)


def drain(pool, host, *, env=ENV, check=False, task=TN.drain):
    clock = Clock()
    run, out = make_run(pool, env, task=f"node.{task.name}", json_lines=True, check=check, clock=clock,
                        sleep=clock.sleep)
    task.body.__wrapped__(run, run.settings.group("managers"), host=host, timeout=30)
    return run, out.getvalue()


def test_drain_moves_the_tasks_then_names_the_containers_that_stay():
    pool = maintenance([api_node(1, True), api_node(2, False), api_node(3, False)])
    pool.responses = {r"^docker node update --availability drain n2$": OK}
    run, out = drain(pool, "10.0.0.2")
    assert run.failed() == [] and pool.changes() == ["docker node update --availability drain n2"]
    assert [c.host for c, cmd in pool.on if "@@" not in cmd] == [LEAD]
    assert steps(out, "changed") == [("10.0.0.2", "drain")] and ("10.0.0.2", "tasks moved") in steps(out, "ok")
    assert "standalone containers stay on h2" in out and "gitlab" in out and "web.1.x" not in out


def test_drain_by_hostname_of_an_already_drained_node_changes_nothing():
    pool = maintenance([api_node(1, True), api_node(2, False, avail="drain"), api_node(3, False)], standalone=[])
    run, out = drain(pool, "h2")
    assert run.failed() == [] and pool.changes() == [] and steps(out, "changed") == []
    assert "no standalone containers on h2" in out


def test_drain_waits_until_every_service_runs_all_its_tasks_again():
    pool = maintenance([api_node(1, True), api_node(2, False), api_node(3, False)],
                       services=[{"Spec": {"Name": "web"}, "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3}}])
    pool.responses = {r"^docker node update": OK}
    run, out = drain(pool, "10.0.0.2")
    assert run.failed() == ["10.0.0.1"] and "services not converged: web 2/3" in out


def test_drain_does_not_wait_for_a_service_no_other_node_can_run_and_says_so():
    """Portainer is constrained to the labelled node: drained, its task stays pending with the
    scheduler's "no suitable node" (the lab's upgrade drill in the full suite: the wait timed
    out on h1, Portainer's manager)."""
    services = [{"ID": "s-web", "Spec": {"Name": "web"}, "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}},
                {"ID": "s-pt", "Spec": {"Name": "portainer"}, "ServiceStatus": {"RunningTasks": 0, "DesiredTasks": 1}}]
    why = "no suitable node (scheduling constraints not satisfied on 3 nodes)"
    unplaced = [{"ServiceID": "s-pt", "Status": {"State": "pending", "Err": why}},
                {"ServiceID": "s-web", "Status": {"State": "running"}}]
    pool = maintenance([api_node(1, True), api_node(2, False), api_node(3, False)], services=services, unplaced=unplaced)
    pool.responses = {r"^docker node update --availability drain n2$": OK}
    run, out = drain(pool, "10.0.0.2")
    assert run.failed() == [] and pool.changes() == ["docker node update --availability drain n2"], out
    assert f"no other node can run portainer ({why}): down until h2 is active again" in out
    assert "every service that another node can run converged" in out


def test_drain_still_waits_for_a_service_whose_tasks_are_only_on_their_way():
    services = [{"ID": "s-web", "Spec": {"Name": "web"}, "ServiceStatus": {"RunningTasks": 2, "DesiredTasks": 3}}]
    unplaced = [{"ServiceID": "s-web", "Status": {"State": "pending", "Err": ""}}]  # not yet scheduled
    pool = maintenance([api_node(1, True), api_node(2, False), api_node(3, False)], services=services, unplaced=unplaced)
    pool.responses = {r"^docker node update": OK}
    run, out = drain(pool, "10.0.0.2")
    assert run.failed() == ["10.0.0.1"] and "services not converged: web 2/3" in out


@pytest.mark.parametrize("nodes, host, why", [
    ([api_node(1, True), api_node(2, True, state="down", reach="unreachable"), api_node(3, True), api_node(4, False)],
     "10.0.0.4", "manager h2 is already down (unreachable)"),
    ([api_node(1, True), api_node(2, False)], "10.0.0.1",
     "h1 is a manager: with it down 0 of 1 managers would be reachable"),
    ([api_node(1, True, avail="drain"), api_node(2, False)], "10.0.0.2", "h2 is the last active node"),
    ([api_node(1, True), api_node(2, False)], "h9", "no swarm node h9"),
])
def test_drain_refusals_come_before_any_change(nodes, host, why):
    pool = maintenance(nodes)
    with pytest.raises(ConfigError, match=re.escape(why)):
        drain(pool, host)
    assert pool.changes() == []


def test_drain_in_check_mode_sends_no_change():
    pool = maintenance([api_node(1, True), api_node(2, False), api_node(3, False)])
    run, out = drain(pool, "10.0.0.2", check=True)
    assert pool.changes() == [] and steps(out, "changed") == [("10.0.0.2", "drain")]


def test_activate_waits_for_the_node_and_every_service():
    pool = maintenance([api_node(1, True), api_node(2, False, avail="drain"), api_node(3, False)])
    pool.responses = {r"^docker node update --availability active n2$": OK}
    run, out = drain(pool, "10.0.0.2", task=TN.activate)
    assert run.failed() == [] and pool.changes() == ["docker node update --availability active n2"]
    assert steps(out, "changed") == [("10.0.0.2", "activate")]
    assert ("10.0.0.2", "services converged") in steps(out, "ok")
    again = maintenance([api_node(1, True), api_node(2, False), api_node(3, False)])
    run, out = drain(again, "10.0.0.2", task=TN.activate)
    assert again.changes() == [] and steps(out, "changed") == []
