"""inv doctor on the real lab: a table and an exit code; a filtered swarm port is a failure."""

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def test_doctor_passes_on_the_lab_and_warns_about_ipvs(lab):
    out = sb(lab, "doctor", json_lines=False)
    assert out.rc == 0, out.stdout + out.stderr
    for h in lab.hosts:
        assert h.addr in out.stdout
    assert "ipvs" in out.stdout and "WARN" in out.stdout  # this kernel has no IPVS
    assert "engine" in out.stdout and "clock" in out.stdout and "disk" in out.stdout


def test_doctor_fails_naming_a_filtered_swarm_port(lab):
    blocked = lab.hosts[-1]
    ssh(lab, blocked, "iptables -I INPUT -p tcp --dport 7946 -j DROP")
    try:
        out = sb(lab, "doctor")
    finally:
        ssh(lab, blocked, "iptables -D INPUT -p tcp --dport 7946 -j DROP")
    assert out.rc == 1
    fails = [e for e in out.failed if e["step"] == "doctor swarm ports"]
    assert fails and all(f"{blocked.addr}:7946" in e["reason"] for e in fails), out.failed
