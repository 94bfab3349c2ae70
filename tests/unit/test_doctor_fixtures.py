"""doctor's cluster checks on what real managers answered, per engine generation, recorded by
`scripts/record-engine-facts.py --doctor SCENARIO` from the lab (1 manager, 2 workers):

- ``unhealthy``: a service whose image does not exist, one whose constraint no node meets, a
  healthy one with 2 replicas, and the worker h3 with its engine stopped;
- ``no-leader``: h2 promoted, then its engine stopped: 1 of 2 managers left, no quorum.
"""

import datetime as dt
import importlib.util
from pathlib import Path

import pytest

from swarmbook import swarmhealth

_spec = importlib.util.spec_from_file_location(
    "record_engine_facts", Path(__file__).resolve().parents[2] / "scripts/record-engine-facts.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

FIXTURES = Path(__file__).parent / "fixtures/engines"


def scenario_dirs(name: str) -> list[str]:
    return sorted(p.parent.name for p in FIXTURES.glob(f"*/doctor-{name}") if p.is_dir())


def answers(engine: str, scenario: str) -> dict:
    """Each recorded fact parsed by its own parser, as doctor's probe would."""
    d = FIXTURES / engine / f"doctor-{scenario}"
    return {f.name: f.parse((d / f"{record.fixture_name(f)}.out").read_text(),
                            int((d / f"{record.fixture_name(f)}.rc").read_text())) for f in record.doctor_facts()}


def test_the_recorded_engines():
    for scenario in ("unhealthy", "no-leader"):
        assert [e.split(".")[0] for e in scenario_dirs(scenario)] == ["20", "26", "28"], scenario


@pytest.mark.parametrize("engine", scenario_dirs("unhealthy"))
def test_an_unhealthy_cluster(engine):
    f = answers(engine, "unhealthy")
    now = dt.datetime.now(dt.timezone.utc)
    checks = swarmhealth.cluster_checks({"172.29.101.11": f}, ["172.29.101.11"], now=now)
    by_name: dict[str, list] = {}
    for c in checks:
        by_name.setdefault(c.name, []).append(c)
    [quorum] = by_name["quorum"]
    assert (quorum.level, quorum.detail.split(" (")[0]) == ("ok", "1 of 1 managers reachable, quorum 1: may lose 0 more")
    [down] = by_name["node"]
    assert (down.host, down.level) == ("h3", "fail")  # its address is not among the probed hosts here
    assert down.detail.startswith("h3 (worker) is down: heartbeat failure;"), down
    services = {c.detail.split(":")[0]: c for c in by_name["service"]}
    assert set(services) == {"doctor-noimage", "doctor-noplace"}  # doctor-ok runs 2/2
    assert all(c.level == "fail" and c.host == "(cluster)" for c in services.values())
    noimage = services["doctor-noimage"].detail
    assert noimage.startswith("doctor-noimage: 0/1 running; ")
    assert "No such image: registry.lab:5000/doctor/nope:latest" in noimage
    assert services["doctor-noplace"].detail.startswith(
        "doctor-noplace: 0/1 running; 1 pending: no suitable node (scheduling constraints not satisfied on ")
    [cert] = by_name["node cert"]
    assert cert.host == "172.29.101.11" and cert.level == "ok"
    assert cert.detail.endswith("; the swarm issues 90-day certificates")


@pytest.mark.parametrize("engine", scenario_dirs("unhealthy"))
def test_a_recorded_node_certificate_near_its_end(engine):
    pem = answers(engine, "unhealthy")["node_cert"]
    end = swarmhealth.cert_not_after(pem)
    lifetime = swarmhealth.cert_lifetime(answers(engine, "unhealthy")["docker_info"])
    assert lifetime == dt.timedelta(days=90)
    assert swarmhealth.cert_check("h1", pem, now=end - dt.timedelta(days=45), lifetime=lifetime).detail == (
        f"45 days left (expires {end:%Y-%m-%d}); the swarm issues 90-day certificates")
    assert swarmhealth.cert_check("h1", pem, now=end - dt.timedelta(days=10)).level == "warn"
    assert swarmhealth.cert_check("h1", pem, now=end + dt.timedelta(minutes=1)).level == "fail"


@pytest.mark.parametrize("engine", scenario_dirs("no-leader"))
def test_a_cluster_without_a_leader(engine):
    f = answers(engine, "no-leader")
    assert isinstance(f["swarm_nodes"], swarmhealth.Refused)
    checks = swarmhealth.cluster_checks({"172.29.101.11": f}, ["172.29.101.11"], now=dt.datetime.now(dt.timezone.utc))
    [quorum] = [c for c in checks if c.name == "quorum"]
    assert quorum.level == "fail" and quorum.host == "(cluster)"
    assert quorum.detail.startswith("lost: The swarm does not have a leader. It's possible that too few managers are "
                                    "online. Make sure more than half of the managers are online. (2 managers known "
                                    "to this one, quorum 2)"), quorum.detail
    assert not [c for c in checks if c.name in ("node", "service")]  # nothing else can be known


def test_a_manager_in_hosts_env_that_is_a_worker_is_named():
    f = answers("28.5.2+dfsg4", "unhealthy")
    worker = {**f, "swarm_nodes": swarmhealth.parse_answer(
        '{"message":"This node is not a swarm manager. Worker nodes can\'t be used to view or modify cluster state."}',
        22)}
    checks = swarmhealth.cluster_checks({"w1": worker}, ["w1"], now=dt.datetime.now(dt.timezone.utc))
    [quorum] = [c for c in checks if c.name == "quorum"]
    assert quorum.level == "fail" and quorum.detail.startswith(
        "no manager listed the nodes (w1: This node is not a swarm manager."), quorum.detail
