"""The runbook end to end on the lab's engine(s): what CI runs on the engine generations the full
lab suite does not use (26.1, 20.10) and on a mixed cluster (one node per engine).

Run alone on a fresh lab: `SWARMBOOK_LAB_ENGINE=26.1 pytest tests/lab -m e2e` (scripts/test.sh
does, once per engine). The full suite (`-m "not e2e"`) proves the same steps one by one.
"""

import json
import urllib.request

import pytest

from swarmbook.dockercmd import version_matches

from .sb import recorded_port, sb, ssh

pytestmark = [pytest.mark.lab, pytest.mark.e2e]


def _http(addr: str, port: int = 9501) -> str:
    with urllib.request.urlopen(f"http://{addr}:{port}/", timeout=5) as r:
        return r.read().decode()


def _engines(lab) -> dict[str, str]:
    return {h.addr: ssh(lab, h, "docker version --format '{{.Server.Version}}'").stdout.strip()
            for h in lab.hosts}


def test_bootstrap_all_converges_on_the_offered_engines_then_reports_zero_changed(lab):
    first = sb(lab, "bootstrap-all", timeout=1800)
    assert first.rc == 0, (first.failed, first.stderr[-2000:])
    running = _engines(lab)
    for h in lab.hosts:  # docker.install took the engine each host's sources offer
        assert version_matches(running[h.addr], h.engine), (h, running[h.addr])
    second = sb(lab, "bootstrap-all", timeout=1800)
    assert second.rc == 0 and second.changed == 0, [e for e in second.steps("changed")]
    for h in lab.hosts:
        assert "demo ok" in _http(h.addr), h


def test_stack_update_after_a_new_push_rolls_and_serves_on_every_node(lab):
    leader = lab.hosts[0]
    before = ssh(lab, leader, "docker service inspect demo_demo --format '{{.Version.Index}}'").stdout.strip()
    out = sb(lab, "image.build-push")
    assert out.rc == 0, out.stdout + out.stderr
    out = sb(lab, "stack.update", "demo")
    assert out.rc == 0, out.stdout + out.stderr
    after = ssh(lab, leader, "docker service inspect demo_demo --format '{{.Version.Index}}'").stdout.strip()
    assert int(after) > int(before)
    for h in lab.hosts:
        assert "demo ok" in _http(h.addr), h


def test_doctor_names_the_engine_skew_of_a_mixed_cluster(lab):
    out = sb(lab, "doctor", json_lines=False)
    assert out.rc == 0, out.stdout + out.stderr
    versions = set(_engines(lab).values())
    if len({v.split(".")[0] for v in versions}) > 1:
        assert "engine skew" in out.stdout and "WARN" in out.stdout, out.stdout
    else:
        assert "engine skew" not in out.stdout, out.stdout


def test_appendix_fab_hosts_make_three_managers_on_these_engines(lab):
    for h in reversed(lab.hosts):  # workers first, the leader last
        ssh(lab, h, "docker swarm leave --force >/dev/null 2>&1 || true")
    hosts = ",".join(f"{h.addr}:{recorded_port(lab, h.addr)}" for h in lab.hosts)
    out = sb(lab, "-i", str(lab.key), "-H", hosts, "swarm.init", tool="fab", env={"SWARMBOOK_ENV": ""})
    assert out.rc == 0, out.stdout + out.stderr
    nodes = [json.loads(x) for x in ssh(lab, lab.hosts[0], "docker node ls --format '{{json .}}'").stdout.splitlines()]
    assert sorted(n["ManagerStatus"] for n in nodes) == ["Leader", "Reachable", "Reachable"]
    again = sb(lab, "-i", str(lab.key), "-H", hosts, "swarm.init", tool="fab", env={"SWARMBOOK_ENV": ""})
    assert again.rc == 0 and again.changed == 0, again.stdout
