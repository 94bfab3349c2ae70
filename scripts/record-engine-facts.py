#!/usr/bin/env python3
"""Record what real engines answer to swarmbook's facts, as fixtures for the parser tests.

Usage: python3 scripts/record-engine-facts.py HOSTS_ENV [OUT_DIR] [--doctor SCENARIO]
Runs each fact's real command (built by swarmbook's own builders) on every node of HOSTS_ENV
(a lab's hosts.env after `inv bootstrap-all`, e.g. a mixed lab: `inv lab.up --engine
20.10,26.1,28.5`), and writes OUT_DIR/<engine version>/<fact>.out with the output and
OUT_DIR/<engine version>/<fact>.rc with the exit code. tests/unit/test_engine_fixtures.py
parses them. Nothing here is written by hand: rerun it when an engine generation is added.

``--doctor SCENARIO`` records instead what doctor's cluster checks read, from the first
manager of HOSTS_ENV only (its /info, /nodes, /services, /tasks and node certificate), into
OUT_DIR/<engine version>/doctor-SCENARIO/, for a cluster set up in that state first (e.g.
`unhealthy`: services that cannot converge and a worker whose engine is stopped;
`no-leader`: two managers, one stopped). tests/unit/test_doctor_fixtures.py parses them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from swarmbook import config, doctorcmd, facts, netcheck, portainercmd, stackcmd, swarmhealth  # noqa: E402
from swarmbook import containercmd  # noqa: E402


def recorded_facts() -> list[facts.Fact]:
    """The facts whose answers change between engine generations (engine API and CLI output)."""
    engine = next(f for f in doctorcmd.probe_facts([]) if f.name == "engine")
    return [facts.docker_info(), facts.ENGINE_VERSION, engine, netcheck.NETWORKS, portainercmd.NODES_FACT,
            stackcmd.services_fact("demo"), containercmd.network_fact("default-network"),
            facts.apt_versions(["docker.io", "docker-cli"]), facts.OS_RELEASE]


def doctor_facts() -> list[facts.Fact]:
    """What doctor's cluster checks read on a manager."""
    return [facts.docker_info(), *swarmhealth.MANAGER_FACTS, swarmhealth.NODE_CERT]


def fixture_name(fact: facts.Fact) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", fact.name)


def main(argv: list[str]) -> int:
    scenario = None
    if "--doctor" in argv:
        i = argv.index("--doctor")
        scenario = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    env = Path(argv[1])
    out = Path(argv[2]) if len(argv) > 2 else REPO / "tests/unit/fixtures/engines"
    settings = config.load(str(env))
    for spec in settings.group("managers")[:1] if scenario else settings.group("nodes"):
        ssh = ["ssh", "-i", settings["SSH_KEY"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", str(spec.port),
               f"{spec.user}@{spec.host}"]
        version = subprocess.run(ssh + [facts.ENGINE_VERSION.command], capture_output=True, text=True,
                                 check=True).stdout
        name = facts.ENGINE_VERSION.parse(version, 0)
        d = out / name / f"doctor-{scenario}" if scenario else out / name
        d.mkdir(parents=True, exist_ok=True)
        for fact in doctor_facts() if scenario else recorded_facts():
            p = subprocess.run(ssh + [fact.command], capture_output=True, text=True)
            (d / f"{fixture_name(fact)}.out").write_text(p.stdout)
            (d / f"{fixture_name(fact)}.rc").write_text(f"{p.returncode}\n")
        print(f"{spec.host}: {name} -> {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
