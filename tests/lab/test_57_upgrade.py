"""Rolling engine upgrade on the real lab (issue 14 items 3 and 4): docker.upgrade takes a
3-manager swarm from Docker 26.1 to 28.5 one node at a time, while a probe loop asks the lab's
load balancer (nginx, swarmbook.lab.lb) and each node every 0.1 s: 0 failed requests through
the LB for the demo service (one task per node, 3 nodes); each node's own gap is printed.

The real path, chosen for CI cost: the suite runs on the 28.5 lab, whose hosts (Debian 13 with
sid's docker.io 28.5 pinned) also offer trixie's docker.io 26.1. So no new lab: every host is
put back on 26.1 with apt directly, all at once (setup, not under test; ~30 s), the lab's swarm
is given three managers by swarm.init with a copy of hosts.env, and docker.upgrade (no
--version: the newest the sources offer) rolls it to 28.5: managers only here, non-leaders
first, the leader last, quorum checked before each (three managers tolerate one down). Before
that, with the lab's single manager, the upgrade is refused in one line and nothing changes.
Leaves the lab as it found it: every host on 28.5, h1 the only manager, every node active.
In the full suite h1 also runs Portainer (constrained to it): drained, it cannot go elsewhere,
docker.upgrade names it and goes on (the drill failed there until 2026-12-02's second session).
Runs on the 28.5 lab only (the other engines' labs offer one engine).
NOT proved here: workers in the same roll (unit-tested: tests/unit/test_upgrade.py), Debian 12
hosts (20.10) upgraded, a failure halfway on real hosts (its resume is unit-tested).
"""

import os
import time
from types import SimpleNamespace

import pytest

from swarmbook.lab import lb

from .drills import engines, newest_engine, offers_two_engines, older_engine, per_node, settled, upgrade_through_lb
from .probe import get
from .sb import roles_file, sb, ssh

pytestmark = [pytest.mark.lab, pytest.mark.skipif(
    os.environ.get("SWARMBOOK_LAB_ENGINE", "28.5") != "28.5",
    reason="the upgrade drill runs on the 28.5 lab: its hosts offer 26.1 and 28.5")]


def roles(lab) -> dict[str, str]:
    out = ssh(lab, lab.hosts[0], "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}'").stdout
    return dict((line.split(" ", 1) + [""])[:2] for line in out.splitlines())


@pytest.fixture(scope="module")
def drill(lab, tmp_path_factory):
    assert len(lab.hosts) == 3, "the drill is written for the lab's 3 hosts"
    if not offers_two_engines(lab):
        pytest.skip("the lab hosts' sources do not offer trixie's docker.io below the newest")
    assert sb(lab, "stack.deploy", "demo").rc == 0
    url = lb.up(lab.state_dir, lab.hosts, 9501)
    for _ in range(50):
        if get(url):
            break
        time.sleep(0.2)
    t0 = time.monotonic()
    before = older_engine(lab)
    print(f"\nsetup: every host on 26.1 and the cluster settled in {time.monotonic() - t0:.1f}s: {before}")
    three = roles_file(lab, tmp_path_factory.mktemp("three"), managers=range(3), workers=[])
    yield SimpleNamespace(url=url, three=three, before=before)
    if not all(v.startswith("28.5") for v in engines(lab).values()):
        newest_engine(lab)  # the drill failed halfway: later tests expect 28.5
    back = sb(lab, "swarm.init")  # the lab's own hosts.env: h2 and h3 demoted again
    assert back.rc == 0, back.stdout + back.stderr
    settled(lab)
    lb.down()
    assert roles(lab) == {"h1": "Leader", "h2": "", "h3": ""}
    assert all(v.startswith("28.5") for v in engines(lab).values()), engines(lab)


def test_the_only_manager_is_not_upgraded_and_an_unoffered_version_is_refused(lab, drill):
    assert all(v.startswith("26.1") for v in drill.before.values()), drill.before
    out = sb(lab, "docker.upgrade", json_lines=False)
    assert out.rc == 2 and len(out.stderr.strip().splitlines()) == 1, out.stdout + out.stderr
    assert "changed nothing" in out.stderr and "h1 is a manager: with it down 0 of 1 managers" in out.stderr
    bad = sb(lab, "docker.upgrade", "--version", "27.0", json_lines=False)
    assert bad.rc == 2 and "DOCKER_VERSION 27.0: the package sources offer docker.io" in bad.stderr, bad.stderr
    assert engines(lab) == drill.before


def test_three_managers_upgraded_one_at_a_time_with_no_request_lost_through_the_lb(lab, drill):
    promoted = sb(lab, "swarm.init", hosts_env=drill.three)
    assert promoted.rc == 0, promoted.stdout + promoted.stderr
    now = roles(lab)
    leader = next(h for h in lab.hosts if now[h.hostname] == "Leader")
    order = [h.addr for h in lab.hosts if h is not leader] + [leader.addr]  # managers; the leader last
    check = sb(lab, "docker.upgrade", "--check", hosts_env=drill.three)
    assert check.rc == 0 and [e["host"] for e in check.steps("changed")] == order, check.stdout
    assert engines(lab) == drill.before  # --check changed nothing

    t0 = time.monotonic()
    out, p = upgrade_through_lb(lab, drill.url, drill.three)
    wall = time.monotonic() - t0
    print(f"docker.upgrade 26.1 -> 28.5, 3 managers: {wall:.1f}s; {p.rounds} probe rounds; {p.summary()}")
    for host, reason in per_node(out).items():
        print(f"  {host}: {reason}")
    assert out.rc == 0, out.stdout + out.stderr
    assert p.counts["lb"].failed == 0 and p.counts["lb"].ok > 100, p.summary()
    assert any(p.counts[h.hostname].failed for h in lab.hosts), "no node was ever down: nothing was upgraded?"
    assert list(per_node(out)) == order
    assert [e["host"] for e in out.steps("ok") if e["step"] == "quorum"] == list(per_node(out))
    assert all(v.startswith("28.5") for v in engines(lab).values()), engines(lab)

    again = sb(lab, "docker.upgrade", hosts_env=drill.three)
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert len([e for e in again.steps("ok") if e["step"] == "engine"]) == 3
