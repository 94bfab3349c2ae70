"""docker.upgrade: the pure plan (order, skips, refusals), its builders and facts, and the task
flow with a scripted pool (exact commands, on which host, in which order; the cluster answering
as it moves on: a drain, a package install that restarts the engine, an activate)."""

import json
import re
import shlex
from dataclasses import replace

import pytest

import swarmbook.tasks.docker as TD
from swarmbook import dockercmd as D
from swarmbook import facts as F
from swarmbook import nodecmd as N
from swarmbook import upgrade as U
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import Clock, FactTable, FakePool, make_run

OLD, NEW = "26.1.5+dfsg1-9+b9", "28.5.2+dfsg4-1"
OLD_CLI, NEW_CLI = "26.1.5+dfsg1-9+b9", "28.5.2+dfsg4-1"
OFFERED = {"docker.io": [(NEW, "sid"), (OLD, "trixie")], "docker-cli": [(NEW_CLI, "sid"), (OLD_CLI, "trixie")]}
ENV = "MANAGERS=10.0.0.1,10.0.0.2,10.0.0.3\nWORKERS=10.0.0.4\n"


def node(i, role="worker", *, engine="26.1.5+dfsg1", state="ready", reach="reachable", avail="active",
         leader=False, labels=()):
    return N.Node(f"n{i}", f"h{i}", f"10.0.0.{i}", role, avail, state, reach if role == "manager" else "",
                  f"10.0.0.{i}" if role == "manager" else "", leader, engine, tuple(labels))


def hf(docker_io=OLD, cli=OLD_CLI, offered=None):
    installed = {k: v for k, v in (("docker.io", docker_io), ("docker-cli", cli)) if v}
    return U.HostFacts(installed, OFFERED if offered is None else offered)


def three_and_a_worker(**kw):
    return [node(1, "manager", leader=True, **kw), node(2, "manager", **kw), node(3, "manager", **kw), node(4, **kw)]


def plan(nodes, facts=None, version="", **kw):
    facts = facts or {n.id: hf() for n in nodes}
    return U.plan(nodes, facts, {n.id: n.addr for n in nodes}, version, **kw)


# --- the plan -----------------------------------------------------------------------------------

def test_managers_first_the_leader_last_then_workers():
    p = plan(three_and_a_worker())
    assert p.problems == [] and [s.name for s in p.steps] == ["10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4"]
    assert p.steps[0].packages == [f"docker.io={NEW}", f"docker-cli={NEW_CLI}"]
    assert (p.steps[0].current, p.steps[0].target) == (OLD, NEW)


def test_a_node_on_target_is_left_alone_and_a_second_run_plans_nothing():
    nodes = three_and_a_worker(engine="28.5.2+dfsg4")
    facts = {n.id: hf(NEW, NEW_CLI) for n in nodes}
    facts["n4"] = hf()
    nodes[3] = node(4)
    p = plan(nodes, facts)
    assert [s.name for s in p.steps] == ["10.0.0.4"] and len(p.done) == 3
    again = plan(three_and_a_worker(engine="28.5.2+dfsg4"), {f"n{i}": hf(NEW, NEW_CLI) for i in range(1, 5)})
    assert again.steps == [] and again.problems == []


def test_packages_on_target_but_the_engine_not_restarted_yet_is_a_restart_only_step():
    nodes = [node(1, "manager", leader=True, engine="28.5.2+dfsg4"), node(2), node(3, engine="28.5.2+dfsg4")]
    p = plan(nodes, {n.id: hf(NEW, NEW_CLI) for n in nodes})
    assert [(s.name, s.packages) for s in p.steps] == [("10.0.0.2", [])]


def test_a_node_an_earlier_run_left_drained_goes_first_even_while_it_is_down():
    nodes = three_and_a_worker()
    nodes[2] = node(3, "manager", state="down", reach="unreachable", avail="drain", labels=[(U.MARK, "drained")])
    p = plan(nodes)
    assert p.problems == [] and [s.name for s in p.steps][0] == "10.0.0.3" and p.steps[0].resume


def test_version_prefix_picks_the_matching_offer_and_an_unoffered_one_is_refused_naming_the_offers():
    nodes = three_and_a_worker()
    p = plan(nodes, version="28.5")
    assert p.steps[0].target == NEW
    bad = plan(nodes, version="27.0")
    assert len(bad.problems) == 4
    assert bad.problems[0] == (f"10.0.0.1: DOCKER_VERSION 27.0: the package sources offer docker.io {NEW} (sid), "
                               f"{OLD} (trixie)")


def test_an_older_version_needs_downgrade():
    nodes = three_and_a_worker(engine="28.5.2+dfsg4")
    facts = {n.id: hf(NEW, NEW_CLI) for n in nodes}
    p = plan(nodes, facts, version="26.1")
    assert p.problems[0] == f"10.0.0.1: docker.io {OLD} is older than the installed {NEW} (--downgrade to allow it)"
    ok = plan(nodes, facts, version="26.1", downgrade=True)
    assert ok.problems == [] and all(s.downgrade for s in ok.steps) and len(ok.steps) == 4


@pytest.mark.parametrize("nodes, why", [
    ([node(1, "manager", leader=True), node(2)], "not upgrading 10.0.0.1: h1 is a manager: with it down 0 of 1 "
                                                 "managers would be reachable, below the majority of 1"),
    ([node(1, "manager", leader=True), node(2, "manager", state="down", reach="unreachable"), node(3, "manager"),
      node(4)], "manager h2 is already down (down): bring it back before upgrading"),
    ([node(1, "manager", leader=True), node(2, "manager", reach="unreachable"), node(3, "manager")],
     "manager h2 is already down (unreachable)"),
    ([node(1, "manager", leader=True), node(2, state="down")], "node h2 is already down (down)"),
    ([node(1, "manager", leader=True), node(2, "manager")], "not upgrading 10.0.0.2: h2 is a manager: with it down "
                                                            "1 of 2 managers would be reachable"),
])
def test_refusals(nodes, why):
    p = plan(nodes)
    assert any(why in x for x in p.problems), p.problems


def test_a_host_without_docker_io_or_that_did_not_answer_is_refused():
    nodes = [node(1, "manager", leader=True, engine="28.5.2+dfsg4"), node(2), node(3)]
    p = plan(nodes, {"n1": hf(NEW, NEW_CLI), "n2": U.HostFacts({"docker-ce": "5:28.0.1-1~debian.12"}, {})})
    assert p.problems == ["10.0.0.2: its engine is not Debian's docker.io (docker-ce 5:28.0.1-1~debian.12); "
                          "docker.upgrade upgrades docker.io from the host's apt sources",
                          "10.0.0.3: could not read its engine packages (see the lines above)"]


# --- builders and facts -------------------------------------------------------------------------

@pytest.mark.parametrize("a, b, want", [
    (OLD, NEW, -1), ("1.0~rc1", "1.0", -1), ("1.0", "1.0", 0), ("1:0.1", "2.0", 1), ("1.0-1", "1.0-1+b1", -1),
    ("20.10.24+dfsg1-1+deb12u1", "20.10.24+dfsg1-1", 1), ("2.10", "2.9", 1), ("1.0~", "1.0~~", 1), ("1.0a", "1.0", 1),
])
def test_compare_versions_as_dpkg_does(a, b, want):
    assert D.compare_versions(a, b) == want and D.compare_versions(b, a) == -want


def test_upgrade_cmd_exact_and_a_hostile_package_stays_one_argument():
    opts = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
    assert D.upgrade_cmd([f"docker.io={NEW}"]) == (
        "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends "
        f"{opts} docker.io={NEW}")
    assert "--allow-downgrades" in D.upgrade_cmd(["docker.io=1"], downgrade=True)
    evil = "docker.io=1'; touch /tmp/pwned; '"
    assert shlex.split(D.upgrade_cmd([evil]).split("; ", 1)[1])[-1] == evil


def test_installed_versions_parses_dpkg_query_and_skips_what_is_not_installed():
    fact = F.installed_versions(["docker.io", "docker-cli"])
    assert fact.command == "dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n' docker.io docker-cli"
    text = f"ii  docker.io {NEW}\nrc  docker-cli {OLD_CLI}\n"
    assert fact.parse(text, 1) == {"docker.io": NEW}


def test_nodes_carry_their_engine_version_and_labels():
    api = [{"ID": "n1", "Description": {"Hostname": "h1", "Engine": {"EngineVersion": "28.5.2+dfsg4"}},
            "Spec": {"Role": "worker", "Availability": "drain", "Labels": {U.MARK: "drained"}},
            "Status": {"State": "ready", "Addr": "10.0.0.1"}}]
    (n,) = N.parse_nodes(api)
    assert n.engine == "28.5.2+dfsg4" and n.labelled(U.MARK) and not n.labelled("other")
    assert N.availability_cmd("n1", "drain", label_add=f"{U.MARK}=drained") == \
        f"docker node update --availability drain --label-add {U.MARK}=drained n1"
    assert N.availability_cmd("n1", "active", label_rm=U.MARK) == \
        f"docker node update --availability active --label-rm {U.MARK} n1"


# --- the task flow ------------------------------------------------------------------------------

def api(n: N.Node) -> dict:
    out = {"ID": n.id, "Description": {"Hostname": n.hostname, "Engine": {"EngineVersion": n.engine}},
           "Spec": {"Role": n.role, "Availability": n.availability, "Labels": dict(n.labels)},
           "Status": {"State": n.state, "Addr": n.addr}}
    if n.role == "manager":
        out["ManagerStatus"] = {"Leader": n.leader, "Reachability": n.reachability, "Addr": f"{n.addr}:2377"}
    return out


def madison(offered):
    return "\n".join(f"{p} | {v} | http://deb.debian.org/debian {s}/main amd64 Packages"
                     for p, vs in offered.items() for v, s in vs)


class Cluster:
    """A FakePool over the nodes, whose answers follow the commands: a drain marks the node, an
    install of the new packages makes its engine the new one, an activate clears the mark."""

    def __init__(self, nodes, installed=None, *, fail_install_on=""):
        self.nodes = {n.id: n for n in nodes}
        self.installed = installed or {n.id: (OLD, OLD_CLI) for n in nodes}
        self.fail_install_on = fail_install_on
        facts = {N.SERVICE_STATUS: (json.dumps([{"Spec": {"Name": "web"},
                                                 "ServiceStatus": {"RunningTasks": 3, "DesiredTasks": 3}}]), 0),
                 N.STANDALONE: ("[]", 0), N.UNPLACED: ("[]", 0)}
        facts.update({N.node_tasks(i): ("[]", 0) for i in self.nodes})
        self.pool = FakePool(facts, run={r"^docker node update ": self.update, r"apt-get install": self.install,
                                         r"systemctl restart docker": self.restart})
        self.sync()

    def sync(self):
        self.pool.facts[N.NODE_LIST] = (json.dumps([api(n) for n in self.nodes.values()]), 0)
        for i, n in self.nodes.items():
            dio, cli = self.installed[i]
            self.pool.host_facts[n.addr] = FactTable({
                F.installed_versions(list(U.PACKAGES)): (f"ii  docker.io {dio}\nii  docker-cli {cli}\n", 0),
                F.apt_versions(list(U.PACKAGES)): (madison(OFFERED), 0),
                F.SERVER_VERSION: (json.dumps({"Version": n.engine}), 0)})

    def update(self, command, host):
        m = re.match(r"docker node update --availability (\w+)(?: --label-(add|rm) (\S+))? (n\d)$", command)
        avail, op, label, i = m.groups()
        n = self.nodes[i]
        labels = dict(n.labels)
        if op == "add":
            labels.update([label.split("=", 1)])
        elif op == "rm":
            labels.pop(label, None)
        self.nodes[i] = replace(n, availability=avail, labels=tuple(sorted(labels.items())))
        self.sync()
        return Result("", "", 0)

    def install(self, command, host):
        i = next(k for k, n in self.nodes.items() if n.addr == host)
        if host == self.fail_install_on:
            return Result("", "E: Unable to fetch some archives", 100)
        self.installed[i] = (NEW, NEW_CLI)
        self.nodes[i] = replace(self.nodes[i], engine="28.5.2+dfsg4")  # the package restarts the engine
        self.sync()
        return Result("", "", 0)

    def restart(self, command, host):
        i = next(k for k, n in self.nodes.items() if n.addr == host)
        self.nodes[i] = replace(self.nodes[i], engine="28.5.2+dfsg4")
        self.sync()
        return Result("", "", 0)

    def sent(self):
        """(host, command) of every change, in order."""
        return [(c.host, cmd) for c, cmd in self.pool.on if "@@" not in cmd]


def upgrade(cluster, *, check=False, **kw):
    clock = Clock()
    run, out = make_run(cluster.pool, ENV, task="docker.upgrade", json_lines=True, check=check, clock=clock,
                        sleep=clock.sleep)
    TD.upgrade.body.__wrapped__(run, run.settings.group("managers"), **{"timeout": 60, **kw})
    return run, out.getvalue()


def steps(out, status=None):
    return [(e["host"], e["step"]) for e in map(json.loads, filter(None, out.splitlines()))
            if e.get("event") == "step" and (status is None or e["status"] == status)]


INSTALL = D.upgrade_cmd([f"docker.io={NEW}", f"docker-cli={NEW_CLI}"])


def test_rolls_one_node_at_a_time_managers_first_each_drained_upgraded_and_activated_from_another_manager():
    c = Cluster(three_and_a_worker())
    run, out = upgrade(c)
    assert run.failed() == [], out
    drain = "docker node update --availability drain --label-add swarmbook.upgrade=drained n{}"
    active = "docker node update --availability active --label-rm swarmbook.upgrade n{}"
    assert c.sent() == [
        ("10.0.0.1", drain.format(2)), ("10.0.0.2", INSTALL), ("10.0.0.1", active.format(2)),
        ("10.0.0.1", drain.format(3)), ("10.0.0.3", INSTALL), ("10.0.0.1", active.format(3)),
        ("10.0.0.2", drain.format(1)), ("10.0.0.1", INSTALL), ("10.0.0.2", active.format(1)),  # the leader last
        ("10.0.0.1", drain.format(4)), ("10.0.0.4", INSTALL), ("10.0.0.1", active.format(4))]
    assert ("10.0.0.2", "quorum") in steps(out, "ok") and ("10.0.0.4", "quorum") not in steps(out, "ok")
    assert [h for h, s in steps(out, "ok") if s == "upgraded"] == ["10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4"]
    assert "2 of 3 managers stay reachable while h2 restarts (a majority is 2)" in out
    run, again = upgrade(c)  # second run: every node on target, nothing sent
    assert run.failed() == [] and [cmd for cmd in c.sent()][12:] == [] and steps(again, "changed") == []
    assert len([s for s in steps(again, "ok") if s[1] == "engine"]) == 4


def test_a_failed_install_stops_there_naming_it_and_a_rerun_goes_on_from_it():
    c = Cluster(three_and_a_worker(), fail_install_on="10.0.0.3")
    run, out = upgrade(c)
    assert run.failed() == ["10.0.0.3"]
    assert c.sent()[-1] == ("10.0.0.3", INSTALL) and len(c.sent()) == 5  # nothing after it
    assert "docker.upgrade stopped at 10.0.0.3" in out and "not started: 10.0.0.1, 10.0.0.4" in out
    assert c.nodes["n3"].availability == "drain" and c.nodes["n3"].labelled(U.MARK)
    c.fail_install_on = ""
    before = len(c.sent())
    run, out = upgrade(c)
    assert run.failed() == [], out
    assert [h for h, _ in c.sent()[before:before + 2]] == ["10.0.0.3", "10.0.0.1"]  # install, then activate n3 first
    assert ("10.0.0.3", "drain") in steps(out, "ok")  # drained by the earlier run: not drained again
    assert all(n.availability == "active" and not n.labels for n in c.nodes.values())


def test_an_engine_the_package_did_not_restart_is_restarted_once():
    nodes = [node(1, "manager", leader=True, engine="28.5.2+dfsg4"), node(2), node(3, engine="28.5.2+dfsg4")]
    c = Cluster(nodes, {"n1": (NEW, NEW_CLI), "n2": (NEW, NEW_CLI), "n3": (NEW, NEW_CLI)})
    run, out = upgrade(c)
    assert run.failed() == [], out
    assert [cmd.split()[0] for _, cmd in c.sent()] == ["docker", "systemctl", "docker"]
    assert ("10.0.0.2", "restart docker") in steps(out, "changed")


def test_check_mode_shows_the_plan_and_sends_nothing():
    c = Cluster(three_and_a_worker())
    run, out = upgrade(c, check=True)
    assert c.sent() == [] and run.failed() == []
    assert steps(out, "changed") == [(f"10.0.0.{i}", "upgrade engine") for i in (2, 3, 1, 4)]


@pytest.mark.parametrize("nodes, kw, why", [
    ([node(1, "manager", leader=True), node(2)], {}, "with it down 0 of 1 managers would be reachable"),
    (three_and_a_worker(), {"version": "27.1"}, "DOCKER_VERSION 27.1: the package sources offer docker.io"),
    ([node(1, "manager", leader=True), node(2, "manager", reach="unreachable"), node(3, "manager")], {},
     "manager h2 is already down"),
])
def test_refused_in_one_line_before_any_change(nodes, kw, why):
    c = Cluster(nodes)
    with pytest.raises(ConfigError, match=re.escape(why)) as exc:
        upgrade(c, **kw)
    assert str(exc.value).startswith("docker.upgrade changed nothing: ") and "\n" not in str(exc.value)
    assert c.sent() == []


def test_bad_version_and_timeout_are_refused_by_the_validator():
    from swarmbook.config import parse

    with pytest.raises(ConfigError, match="is not a version"):
        TD._check_upgrade(parse(ENV, environ={}), version="28.5; reboot")
    with pytest.raises(ConfigError, match="--timeout must be a positive"):
        TD._check_upgrade(parse(ENV, environ={}), timeout=0)


def test_the_wait_for_the_leader_goes_on_while_the_managers_elect_a_new_one():
    """After the leader's engine restarts, the others answer /nodes with an error for a few
    seconds: the wait keeps polling the same control manager instead of failing."""
    c = Cluster([node(1, "manager", leader=True), node(2, "manager"), node(3, "manager")])
    installed = c.install

    def install_then_no_leader(command, host):
        result = installed(command, host)
        if host == "10.0.0.1":
            c.pool.facts[N.NODE_LIST] = ("", 22)  # curl -f on a 503 "the swarm does not have a leader"
        return result

    c.pool.responses[r"apt-get install"] = install_then_no_leader
    clock = Clock()
    run, out = make_run(c.pool, ENV, task="docker.upgrade", json_lines=True, clock=clock,
                        sleep=lambda s: (clock.sleep(s), c.sync()))
    TD.upgrade.body.__wrapped__(run, run.settings.group("managers"), timeout=60)
    assert run.failed() == [], out.getvalue()
    assert [h for h, s in steps(out.getvalue(), "ok") if s == "upgraded"] == ["10.0.0.2", "10.0.0.3", "10.0.0.1"]


def test_a_node_drained_before_the_upgrade_is_upgraded_and_stays_drained():
    nodes = three_and_a_worker()
    nodes[3] = node(4, avail="drain")
    c = Cluster(nodes)
    run, out = upgrade(c)
    assert run.failed() == [], out
    assert [cmd for h, cmd in c.sent() if h == "10.0.0.1" and cmd.endswith("n4")] == []  # no drain, no activate
    assert ("10.0.0.4", INSTALL) in c.sent() and c.nodes["n4"].availability == "drain"
    assert "drained before docker.upgrade: it stays drained afterwards" in out


def test_downgrade_asks_apt_to_allow_it():
    c = Cluster(three_and_a_worker(engine="28.5.2+dfsg4"), {f"n{i}": (NEW, NEW_CLI) for i in (1, 2, 3, 4)})
    with pytest.raises(ConfigError, match="--downgrade to allow it"):
        upgrade(c, version="26.1")
    c.pool.responses[r"apt-get install"] = lambda command, host: Result("", "", 0)  # the engine stays 28.5 here
    run, out = upgrade(c, version="26.1", downgrade=True, timeout=5)
    sent = [cmd for h, cmd in c.sent() if "apt-get" in cmd]
    assert run.failed() == ["10.0.0.2"] and "wanted ready on 26.1.5" in out  # (so the fake's wait ends there)
    assert sent[0] == D.upgrade_cmd([f"docker.io={OLD}", f"docker-cli={OLD_CLI}"], downgrade=True)


def test_activate_waits_until_the_global_service_wants_its_task_on_the_node_again():
    """Right after an activate, a global service still wants one task fewer (swarm has not
    placed it yet) and looks converged: the run waits until the count is back."""
    c = Cluster([node(1, "manager", leader=True, engine="28.5.2+dfsg4"), node(2), node(3, engine="28.5.2+dfsg4")],
                {"n1": (NEW, NEW_CLI), "n2": (OLD, OLD_CLI), "n3": (NEW, NEW_CLI)})
    status = {"n": 3}
    updated = c.update

    def update(command, host):
        status["n"] = 2  # drained, and just activated: swarm has not placed the node's task yet
        return updated(command, host)

    def sync_services():
        c.pool.facts[N.SERVICE_STATUS] = (json.dumps([{"Spec": {"Name": "web"}, "ServiceStatus": {
            "RunningTasks": status["n"], "DesiredTasks": status["n"]}}]), 0)

    c.pool.responses[r"^docker node update "] = lambda command, host: (update(command, host), sync_services())[0]
    clock = Clock()

    def sleep(s):
        clock.sleep(s)
        if c.nodes["n2"].availability == "active" and clock.now > 5:
            status["n"] = 3  # placed a few seconds later
        sync_services()

    run, out = make_run(c.pool, ENV, task="docker.upgrade", json_lines=True, clock=clock, sleep=sleep)
    TD.upgrade.body.__wrapped__(run, run.settings.group("managers"), timeout=60)
    assert run.failed() == [], out.getvalue()
    (reason,) = [e["reason"] for e in map(json.loads, filter(None, out.getvalue().splitlines()))
                 if e.get("step") == "upgraded"]
    assert re.search(r"activate [1-9][0-9.]*s", reason), reason
