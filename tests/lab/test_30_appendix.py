"""The runbook's appendix: three machines A B C, A leads, all three managers, with `fab -H`."""

import json

import pytest

from .sb import recorded_port, sb, ssh

pytestmark = pytest.mark.lab


def _fab_hosts(lab):
    return ",".join(f"{h.addr}:{recorded_port(lab, h.addr)}" for h in lab.hosts)


def _leave_all(lab):
    for h in reversed(lab.hosts):  # workers first, the leader last
        ssh(lab, h, "docker swarm leave --force >/dev/null 2>&1 || true")


def test_fab_hosts_make_one_swarm_of_three_managers(lab):
    _leave_all(lab)
    hosts = _fab_hosts(lab)
    out = sb(lab, "-i", str(lab.key), "-H", hosts, "swarm.init", tool="fab", env={"SWARMBOOK_ENV": ""})
    assert out.rc == 0, out.stdout + out.stderr
    nodes = [json.loads(x) for x in ssh(lab, lab.hosts[0], "docker node ls --format '{{json .}}'").stdout.splitlines()]
    status = {n["Hostname"]: n["ManagerStatus"] for n in nodes}
    assert status[lab.hosts[0].hostname] == "Leader"
    assert sorted(status.values()) == ["Leader", "Reachable", "Reachable"]
    again = sb(lab, "-i", str(lab.key), "-H", hosts, "swarm.init", tool="fab", env={"SWARMBOOK_ENV": ""})
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_a_node_of_another_swarm_is_reported_not_moved(lab):
    other = lab.hosts[-1]
    ssh(lab, other, "docker swarm leave --force >/dev/null && docker swarm init --advertise-addr "
                    f"{other.addr} >/dev/null")
    try:
        out = sb(lab, "-i", str(lab.key), "-H", _fab_hosts(lab), "swarm.init",
                 tool="fab", env={"SWARMBOOK_ENV": ""})
        assert out.rc == 1
        (fail,) = out.failed
        assert fail["host"] == other.addr and "another swarm" in fail["reason"]
        assert ssh(lab, other, "docker info --format '{{.Swarm.ControlAvailable}}'").stdout.strip() == "true"
    finally:
        ssh(lab, other, "docker swarm leave --force >/dev/null")
        ssh(lab, lab.hosts[0], f"docker node rm --force {lab.hosts[-1].hostname} >/dev/null 2>&1 || true")
