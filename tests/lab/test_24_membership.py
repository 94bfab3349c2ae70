"""Day 2 on the real lab (issue 14): swarm.init converges roles to hosts.env (role drift demoted,
a worker promoted and demoted back, quorum-safe), node.drain moves a replicated service's tasks
off a node and node.activate brings the node back, swarm.init --prune --yes removes a node the
file no longer lists and the original file joins it again. Each change is followed by a rerun
that must change nothing. Leaves the lab as it found it: h1 manager, the others active workers,
no test service or container."""

import json
import time

import pytest

from .sb import roles_file as hosts_file
from .sb import sb, ssh
from .sb import until as _until

pytestmark = pytest.mark.lab

IMAGE = "busybox:latest"  # pulled through the lab's mirror (DOCKER_MIRRORS)
SERVICES = ("probe-spread", "probe-global")


def nodes(lab) -> dict[str, dict]:
    out = ssh(lab, lab.hosts[0], "docker node ls --format '{{json .}}'").stdout
    return {n["Hostname"]: n for n in map(json.loads, out.splitlines())}


def roles(lab) -> dict[str, str]:
    return {h: ("manager" if n["ManagerStatus"] else "worker") for h, n in nodes(lab).items()}




def changed_steps(out) -> list[tuple[str, str]]:
    return [(e["host"], e["step"]) for e in out.steps("changed")]


def warnings(out) -> list[str]:
    return [e["text"] for e in out.events if e.get("event") == "warning"]


def running_on(lab, service) -> list[str]:
    out = ssh(lab, lab.hosts[0], f"docker service ps {service} --filter desired-state=running "
                                 "--format '{{.Node}} {{.CurrentState}}'").stdout
    return sorted(line.split()[0] for line in out.splitlines() if " Running " in f" {line}")


def replicas(lab, service) -> str:
    return ssh(lab, lab.hosts[0], f"docker service ls --filter name={service} --format '{{{{.Replicas}}}}'").stdout.strip()


def _normal(lab):
    """h1 the only manager, every node active, as the lab's hosts.env says."""
    for h in lab.hosts:
        ssh(lab, lab.hosts[0], f"docker node update --availability active {h.hostname}", check=False)
    out = sb(lab, "swarm.init", "--prune", "--yes")
    assert out.rc == 0, out.stdout + out.stderr


def _remove_probes(lab):
    ssh(lab, lab.hosts[0], "docker service rm " + " ".join(SERVICES), check=False)
    ssh(lab, lab.hosts[-1], "docker rm -f probe-standalone", check=False)


@pytest.fixture(scope="module")
def swarm(lab):
    assert len(lab.hosts) >= 3, "needs 3 lab hosts"
    assert sb(lab, "docker.install").rc == 0
    assert sb(lab, "docker.mirrors").rc == 0  # IMAGE comes through the lab's mirror
    _normal(lab)
    h1, last = lab.hosts[0], lab.hosts[-1]
    n = len(lab.hosts)
    _remove_probes(lab)  # left by an interrupted run
    # `sleep` as PID 1 ignores SIGTERM: a 2 s grace period (default 10 s) keeps each move quick
    quick = f"--no-resolve-image --stop-grace-period 2s {IMAGE} sleep 86400"
    ssh(lab, h1, f"docker service create -q --detach --name probe-spread --replicas {n} {quick}")
    ssh(lab, h1, f"docker service create -q --detach --name probe-global --mode global {quick}")
    ssh(lab, last, f"docker run -d --name probe-standalone {IMAGE} sleep 86400")
    _until("test services running", lambda: [replicas(lab, s) for s in SERVICES],
           lambda r: r == [f"{n}/{n}", f"{n}/{n}"])
    yield
    _remove_probes(lab)
    _normal(lab)
    assert roles(lab) == {h.hostname: "manager" if i == 0 else "worker" for i, h in enumerate(lab.hosts)}
    assert all(n["Availability"] == "Active" and n["Status"] == "Ready" for n in nodes(lab).values())


def test_role_drift_is_demoted_not_reported_as_in_the_swarm(lab, swarm):
    """Measured before: hosts.env listed h2 and h3 as WORKERS while both were managers;
    swarm.init said "swarm worker: already in this swarm" and changed nothing."""
    names = " ".join(h.hostname for h in lab.hosts[1:])
    ssh(lab, lab.hosts[0], f"docker node promote {names}")
    _until("promoted managers reachable", lambda: nodes(lab),
           lambda ns: all(ns[h.hostname]["ManagerStatus"] == "Reachable" for h in lab.hosts[1:]))
    out = sb(lab, "swarm.init")
    assert out.rc == 0, out.stdout + out.stderr
    assert changed_steps(out) == [(h.addr, "demote to worker") for h in lab.hosts[1:]]
    assert "already in this swarm" not in out.stdout
    assert roles(lab) == {h.hostname: "manager" if i == 0 else "worker" for i, h in enumerate(lab.hosts)}
    again = sb(lab, "swarm.init")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_a_worker_promoted_by_the_file_then_demoted_back(lab, swarm, tmp_path):
    h2 = lab.hosts[1]
    two = hosts_file(lab, tmp_path, managers=[0, 1], workers=range(2, len(lab.hosts)))
    out = sb(lab, "swarm.init", hosts_env=two)
    assert out.rc == 0, out.stdout + out.stderr
    assert changed_steps(out) == [(h2.addr, "promote to manager")]
    assert any("2 managers: an even number adds no fault tolerance" in w for w in warnings(out))
    assert roles(lab)[h2.hostname] == "manager"
    assert sb(lab, "swarm.init", hosts_env=two).changed == 0
    back = sb(lab, "swarm.init")
    assert back.rc == 0 and changed_steps(back) == [(h2.addr, "demote to worker")], back.stdout
    assert roles(lab)[h2.hostname] == "worker"
    assert sb(lab, "swarm.init").changed == 0


def test_drain_moves_the_tasks_away_and_activate_brings_the_node_back(lab, swarm):
    target = lab.hosts[-1]
    n = len(lab.hosts)
    assert target.hostname in running_on(lab, "probe-spread")
    check = sb(lab, "node.drain", target.addr, "--check")
    assert check.rc == 0 and changed_steps(check) == [(target.addr, "drain")]
    assert nodes(lab)[target.hostname]["Availability"] == "Active"  # --check changed nothing

    start = time.monotonic()
    out = sb(lab, "node.drain", target.addr)
    drained_in = time.monotonic() - start
    assert out.rc == 0, out.stdout + out.stderr
    assert changed_steps(out) == [(target.addr, "drain")]
    assert nodes(lab)[target.hostname]["Availability"] == "Drain"
    assert target.hostname not in running_on(lab, "probe-spread")
    assert replicas(lab, "probe-spread") == f"{n}/{n}"  # every task runs elsewhere
    assert replicas(lab, "probe-global") == f"{n - 1}/{n - 1}"
    assert any("probe-standalone" in w and "standalone containers stay on" in w for w in warnings(out)), out.stdout
    assert ssh(lab, target, "docker inspect -f '{{.State.Running}}' probe-standalone").stdout.strip() == "true"
    again = sb(lab, "node.drain", target.addr)
    assert again.rc == 0 and again.changed == 0, again.stdout

    start = time.monotonic()
    up = sb(lab, "node.activate", target.addr)
    activated_in = time.monotonic() - start
    assert up.rc == 0, up.stdout + up.stderr
    assert changed_steps(up) == [(target.addr, "activate")]
    assert nodes(lab)[target.hostname]["Availability"] == "Active"
    assert target.hostname in running_on(lab, "probe-global")  # the global task came back with the node
    assert replicas(lab, "probe-global") == f"{n}/{n}"
    assert sb(lab, "node.activate", target.addr).changed == 0
    print(f"\nnode.drain {target.hostname}: {drained_in:.1f}s ({out.steps('ok')[-1]['reason']}); "
          f"node.activate: {activated_in:.1f}s ({up.steps('ok')[-1]['reason']})")


def test_refusals_are_one_line_and_change_nothing(lab, swarm, tmp_path):
    before = nodes(lab)
    only_manager = sb(lab, "node.drain", lab.hosts[0].addr, json_lines=False)
    assert only_manager.rc == 2 and "not draining" in only_manager.stderr and "below the majority" in only_manager.stderr
    assert len(only_manager.stderr.strip().splitlines()) == 1 and "Traceback" not in only_manager.stderr
    prune = sb(lab, "swarm.init", "--prune", json_lines=False)
    assert prune.rc == 2 and "add --yes" in prune.stderr
    assert nodes(lab) == before


def test_quorum_guard_with_a_manager_down(lab, swarm, tmp_path):
    """Three managers, h3's engine stopped: a file that keeps h3 a manager and demotes h2 would
    leave 1 of 2 managers reachable; node.drain of anything is refused while a manager is down."""
    h2, h3 = lab.hosts[1], lab.hosts[2]
    ssh(lab, lab.hosts[0], f"docker node promote {h2.hostname} {h3.hostname}")
    _until("three reachable managers", lambda: nodes(lab),
           lambda ns: all(ns[h.hostname]["ManagerStatus"] in ("Leader", "Reachable") for h in lab.hosts[:3]))
    ssh(lab, h3, "systemctl stop docker docker.socket")
    try:
        _until(f"{h3.hostname} unreachable", lambda: nodes(lab)[h3.hostname]["ManagerStatus"],
               lambda v: v == "Unreachable", timeout=60, interval=1)
        keep_h3 = hosts_file(lab, tmp_path, managers=[0, 2], workers=[1])
        out = sb(lab, "swarm.init", hosts_env=keep_h3, json_lines=False)
        assert out.rc == 2 and f"demoting {h2.addr} would leave 1 of 2 managers reachable" in out.stderr, out.stderr
        drain = sb(lab, "node.drain", h2.addr, json_lines=False)
        assert drain.rc == 2 and f"manager {h3.hostname} is already down" in drain.stderr, drain.stderr
        assert roles(lab)[h2.hostname] == "manager" and nodes(lab)[h2.hostname]["Availability"] == "Active"
    finally:
        ssh(lab, h3, "systemctl start docker")
    _until(f"{h3.hostname} reachable again", lambda: nodes(lab)[h3.hostname]["ManagerStatus"],
           lambda v: v == "Reachable", timeout=90)
    back = sb(lab, "swarm.init")
    assert back.rc == 0 and sorted(changed_steps(back)) == [(h2.addr, "demote to worker"), (h3.addr, "demote to worker")]


def test_a_manager_that_left_with_force_rejoins_and_its_stale_entry_does_not_block(lab, swarm):
    """Its old entry (down, unreachable) still counts as a manager: 2 reachable of 3. It is
    demoted first and removed, so demoting h2 in the same run stays safe."""
    h2, h3 = lab.hosts[1], lab.hosts[2]
    ssh(lab, lab.hosts[0], f"docker node promote {h2.hostname} {h3.hostname}")
    _until("three reachable managers", lambda: nodes(lab),
           lambda ns: all(ns[h.hostname]["ManagerStatus"] in ("Leader", "Reachable") for h in lab.hosts[:3]))
    ssh(lab, h3, "docker swarm leave --force >/dev/null")
    _until(f"{h3.hostname} unreachable", lambda: nodes(lab)[h3.hostname]["ManagerStatus"],
           lambda v: v == "Unreachable", timeout=60, interval=1)
    out = sb(lab, "swarm.init")
    assert out.rc == 0, out.stdout + out.stderr
    assert {(h2.addr, "demote to worker"), (h3.addr, "join as worker")} <= set(changed_steps(out))
    listed = ssh(lab, lab.hosts[0], "docker node ls --format '{{.Hostname}} {{.Status}}'").stdout.split("\n")
    assert sorted(x for x in listed if x) == sorted(f"{h.hostname} Ready" for h in lab.hosts)  # one entry each
    assert roles(lab) == {h.hostname: "manager" if i == 0 else "worker" for i, h in enumerate(lab.hosts)}
    assert sb(lab, "swarm.init").changed == 0


def test_prune_removes_an_unlisted_node_and_the_original_file_joins_it_again(lab, swarm, tmp_path):
    gone = lab.hosts[-1]
    n = len(lab.hosts)
    fewer = hosts_file(lab, tmp_path, managers=[0], workers=range(1, n - 1))
    told = sb(lab, "swarm.init", hosts_env=fewer)
    assert told.rc == 0 and told.changed == 0
    assert any(f"node {gone.hostname} ({gone.addr}" in w and "--prune --yes" in w for w in warnings(told)), told.stdout
    start = time.monotonic()
    out = sb(lab, "swarm.init", "--prune", "--yes", hosts_env=fewer)
    pruned_in = time.monotonic() - start
    assert out.rc == 0, out.stdout + out.stderr
    assert changed_steps(out) == [(gone.addr, "drain"), (gone.addr, "leave the swarm"), (gone.addr, "remove node")]
    assert gone.hostname not in nodes(lab)
    assert ssh(lab, gone, "docker info --format '{{.Swarm.LocalNodeState}}'").stdout.strip() == "inactive"
    assert replicas(lab, "probe-spread") == f"{n}/{n}"  # its task runs on the others
    assert sb(lab, "swarm.init", "--prune", "--yes", hosts_env=fewer).changed == 0

    back = sb(lab, "swarm.init")
    assert back.rc == 0, back.stdout + back.stderr
    assert (gone.addr, "join as worker") in changed_steps(back)
    ns = nodes(lab)
    assert sorted(ns) == sorted(h.hostname for h in lab.hosts) and all(x["Status"] == "Ready" for x in ns.values())
    assert sb(lab, "swarm.init").changed == 0
    print(f"\nswarm.init --prune --yes ({gone.hostname}): {pruned_in:.1f}s")
