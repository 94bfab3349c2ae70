"""swarmbook's fact parsers on what real engines answered: Docker 20.10, 26.1 and 28.5 in the lab,
recorded by scripts/record-engine-facts.py (a mixed cluster after bootstrap-all), never by hand."""

from pathlib import Path

import pytest

from swarmbook import dockercmd, swarmcmd

import importlib.util

_spec = importlib.util.spec_from_file_location(
    "record_engine_facts", Path(__file__).resolve().parents[2] / "scripts/record-engine-facts.py")
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

FIXTURES = Path(__file__).parent / "fixtures/engines"
ENGINES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def answers(engine: str) -> dict:
    """Each recorded fact parsed by its own parser, as a probe would."""
    out = {}
    for fact in record.recorded_facts():
        name = record.fixture_name(fact)
        text = (FIXTURES / engine / f"{name}.out").read_text()
        rc = int((FIXTURES / engine / f"{name}.rc").read_text())
        out[fact.name] = fact.parse(text, rc)
    return out


def test_every_generation_was_recorded():
    assert [e.split(".")[0] for e in ENGINES] == ["20", "26", "28"], ENGINES


@pytest.mark.parametrize("engine", ENGINES)
def test_parsers_read_each_engine_generation(engine):
    f = answers(engine)
    assert f["engine_version"] == engine
    assert f["engine"].startswith(engine + " (API 1.")
    assert dockercmd.version_matches(f["docker_info"]["ServerVersion"], engine.split("+")[0])
    swarm = swarmcmd.parse_swarm(f["docker_info"])
    assert swarm.active and swarm.node_id, swarm
    nets = {n["name"]: n for n in f["networks"]}
    assert nets["ingress"]["ingress"] and nets["default-network"]["driver"] == "overlay"
    assert f["network:default-network"] is not None
    hostnames = {n["hostname"] for n in f["nodes"]}
    assert len(hostnames) == 3 and all(n["role"] in ("manager", "worker") for n in f["nodes"])
    demo = f["services"]["demo_demo"]
    assert demo["image"].startswith("registry.lab:5000/demo:latest")
    assert f["os"]["VERSION_CODENAME"] in ("bookworm", "trixie")
    offered = f["apt_versions"]
    assert offered["docker.io"] and dockercmd.engine_packages(offered, engine.split("+")[0])
    # Debian 13 splits the CLI out of docker.io: the package list docker.install asks for says so
    assert (dockercmd.DEBIAN_CLI in dockercmd.engine_packages(offered)) == (f["os"]["VERSION_CODENAME"] != "bookworm")
