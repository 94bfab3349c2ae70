"""The installed product (issue 16 item 2): the wheel built from this checkout's sources, installed
into a fresh venv in a folder outside the checkout, and run from there: `swarmbook --list`, a
read-only task against the lab (swarm.status from the lab's hosts.env, and with -H as under fab),
and the README's own tasks.py that imports swarmbook.tasks, run with the venv's Invoke.

The venv sees this machine's site-packages (fabric, invoke, paramiko, ... are not downloaded
again: --system-site-packages), but its own swarmbook comes first; every run checks which
swarmbook it loaded. Uses the lab the suite has up (a swarm: made here when this file runs alone).

NOT proved here: an install that resolves and downloads the dependencies (the venv reuses the
machine's), pipx itself, `swarmbook lab.up` from the installed package (its files are checked).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from swarmbook import assets
from swarmbook.tasks import ns

from .sb import REPO, recorded_port, sb, ssh

pytestmark = pytest.mark.lab

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "swarmbook", *assets.SHIPPED)
NO_CHECKOUT = {"PYTHONPATH": ""}  # whatever the caller had: the venv's own swarmbook only


@dataclass
class Product:
    wheel: Path
    venv: Path
    home: Path  # the user's folder: outside the checkout, holds their tasks.py
    build_s: float
    install_s: float

    @property
    def swarmbook(self) -> str:
        return str(self.venv / "bin" / "swarmbook")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert p.returncode == 0, (argv, p.stdout[-2000:], p.stderr[-2000:])
    return p


@pytest.fixture(scope="module")
def product(tmp_path_factory) -> Product:
    base = tmp_path_factory.mktemp("product")
    assert REPO not in base.parents and base != REPO
    src = base / "src"  # what the sdist holds: the build must need nothing else of the checkout
    for name in SOURCES:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_data"))
        else:
            shutil.copy2(REPO / name, src / name)
    t0 = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check",
          "-w", str(base / "dist"), str(src)])
    build_s = time.monotonic() - t0
    (wheel,) = (base / "dist").glob("swarmbook-*.whl")
    t0 = time.monotonic()
    _run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(base / "venv")])
    _run([sys.executable, "-m", "pip", "--python", str(base / "venv" / "bin" / "python"), "install", "-q",
          "--no-deps", "--ignore-installed", "--no-index", "--disable-pip-version-check", str(wheel)])
    install_s = time.monotonic() - t0
    print(f"\nwheel built in {build_s:.1f} s; venv made and wheel installed in {install_s:.1f} s")
    home = base / "home"
    home.mkdir()
    return Product(wheel, base / "venv", home, build_s, install_s)


@pytest.fixture(scope="module")
def swarm(lab):
    """The lab's swarm (made by test_20 in a full run; made here when this file runs alone)."""
    if sb(lab, "swarm.status").rc != 0:
        for task in ("docker.install", "swarm.init"):
            out = sb(lab, task)
            assert out.rc == 0, (task, out.failed)
    return lab


def _checkout_files() -> dict[str, Path]:
    """Every file the wheel must carry besides code: wheel path -> checkout file."""
    out = {}
    for name in assets.SHIPPED:
        top = REPO / name
        for f in ([top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())):
            out[f"swarmbook/_data/{f.relative_to(REPO)}"] = f
    for f in sorted((REPO / "swarmbook" / "lab" / "standin").iterdir()):
        if f.is_file():
            out[f"swarmbook/lab/standin/{f.name}"] = f
    return out


def test_the_wheel_carries_the_collection_the_command_and_every_shipped_file(product):
    with zipfile.ZipFile(product.wheel) as z:
        names = set(z.namelist())
        for wheel_path, f in _checkout_files().items():
            assert wheel_path in names, wheel_path
            assert z.read(wheel_path) == f.read_bytes(), wheel_path
        code = {p.relative_to(REPO).as_posix() for p in (REPO / "swarmbook").rglob("*.py")}
        assert code <= names, sorted(code - names)  # swarmbook/tasks/*.py included
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "swarmbook = swarmbook.cli:main" in z.read(entry_points).decode()
    assert product.build_s + product.install_s < 60, "building and installing must stay cheap"


def test_the_installed_package_is_the_one_that_runs_and_finds_its_files(product):
    probe = ("import json, swarmbook, swarmbook.tasks; from swarmbook import assets, config; "
             "from swarmbook.lab import layout, platform; "
             "print(json.dumps({'file': swarmbook.__file__, 'tasks': swarmbook.tasks.__file__, "
             "'installed': assets.installed(), 'stacks': str(config.stacks_path({'STACKS_PATH': ''})), "
             "'contexts': sorted(platform.contexts()), 'lab': str(layout.state_dir())}))")
    p = _run([product.python, "-c", probe], cwd=product.home,
             env={**os.environ, **NO_CHECKOUT, "SWARMBOOK_LAB_DIR": "", "SWARMBOOK_LAB_INSTANCE": "0"})
    got = json.loads(p.stdout)
    site = product.venv / "lib"
    assert Path(got["file"]).is_relative_to(site) and Path(got["tasks"]).is_relative_to(site), got
    assert got["installed"] and Path(got["stacks"], "demo", "deploy.yml").is_file()
    assert Path(got["stacks"]).is_relative_to(site)
    assert "library/postgres:15" in got["contexts"]  # the lab's stand-in files read from the package
    assert got["lab"] == str(product.home / ".lab")  # no checkout: the lab's state beside the user


def test_swarmbook_list_from_outside_the_checkout(product):
    p = _run([product.swarmbook, "--list"], cwd=product.home, env={**os.environ, **NO_CHECKOUT})
    listed = set(re.findall(r"^  (\S+)", p.stdout, re.M))
    expected = set()

    def walk(coll, prefix=""):
        expected.update(prefix + t for t in coll.tasks)
        for n, c in coll.collections.items():
            walk(c, prefix + n + ".")

    walk(ns)
    assert listed == expected


def _seen(out) -> list[tuple]:
    return sorted(tuple(str(e.get(k, "")) for k in ("event", "host", "step", "status", "Hostname", "Name"))
                  for e in out.events)


def test_a_read_only_task_against_the_lab_from_hosts_env_and_with_minus_h(product, swarm):
    lab = swarm
    checkout = sb(lab, "swarm.status")  # inv in the checkout, at the same moment
    assert checkout.rc == 0, checkout.stdout + checkout.stderr
    installed = sb(lab, "swarm.status", tool=product.swarmbook, cwd=product.home, env=NO_CHECKOUT)
    assert installed.rc == 0, installed.stdout + installed.stderr
    assert _seen(installed) == _seen(checkout)
    leader = lab.hosts[0]
    assert installed.steps("ok", host=leader.addr) and all(h.hostname in installed.stdout for h in lab.hosts)

    h1 = f"{leader.addr}:{recorded_port(lab, leader.addr)}"
    by_h = sb(lab, "-i", str(lab.key), "-H", h1, "swarm.status", tool=product.swarmbook, cwd=product.home,
              env={**NO_CHECKOUT, "SWARMBOOK_ENV": ""})  # no hosts file at all: -H names the host
    assert by_h.rc == 0, by_h.stdout + by_h.stderr
    assert "swarm status" in [e["step"] for e in by_h.steps("ok", host=leader.addr)]
    assert all(h.hostname in by_h.stdout for h in lab.hosts)


def test_swarmbook_minus_h_runs_a_cluster_task_once_over_the_given_hosts(product, swarm):
    """`swarmbook -H a,b,c swarm.init` as `fab -H`: one run, a leads, all three managers (--check:
    what it would do, nothing changed)."""
    lab = swarm
    roles = "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}'"
    before = ssh(lab, lab.hosts[0], roles).stdout
    hosts = ",".join(f"{h.addr}:{recorded_port(lab, h.addr)}" for h in lab.hosts)
    out = sb(lab, "-i", str(lab.key), "-H", hosts, "swarm.init", "--check", tool=product.swarmbook,
             cwd=product.home, env={**NO_CHECKOUT, "SWARMBOOK_ENV": ""})
    assert out.rc == 0 and not out.failed, out.stdout + out.stderr
    assert set(out.recap()) == {h.addr for h in lab.hosts}
    assert all(e["step"] == "promote to manager" and e["check"] for e in out.steps("changed")), out.stdout
    assert ssh(lab, lab.hosts[0], roles).stdout == before


def _readme_runbook() -> str:
    (block,) = re.findall(r"```python\n(# tasks\.py\n.*?)```", (REPO / "README.md").read_text(), re.S)
    return block


def test_a_user_runbook_imports_the_collection_and_runs_its_task_on_the_lab(product, swarm):
    lab = swarm
    (product.home / "tasks.py").write_text(_readme_runbook())
    invoke = [product.python, "-m", "invoke"]  # the venv's python: its swarmbook, the machine's Invoke
    listed = _run([*invoke, "--list"], cwd=product.home, env={**os.environ, **NO_CHECKOUT}).stdout
    assert re.search(r"^  nodes +Show the swarm's nodes", listed, re.M), listed
    assert re.search(r"^  docker\.install\b", listed, re.M) and re.search(r"^  swarm\.status\b", listed, re.M)
    out = sb(lab, *invoke[1:], "nodes", tool=invoke[0], cwd=product.home, env=NO_CHECKOUT, json_lines=False)
    assert out.rc == 0, out.stdout + out.stderr
    assert all(h.hostname in out.stdout for h in lab.hosts) and "swarm status" in out.stdout
