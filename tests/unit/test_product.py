"""swarmbook as a product (issue 16): the shipped files found the same way in a checkout and in a
wheel, the `swarmbook` command (Fabric's program with the collection bundled), and a user's own
tasks.py composing swarmbook.tasks as the README shows it. The wheel itself, installed in a
fresh venv and run against the lab: tests/lab/test_60_installed.py."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from swarmbook import assets, cli, config, taskdef
from swarmbook.lab import layout
from swarmbook.tasks import ns

REPO = Path(__file__).resolve().parents[2]


def _task_names(coll, prefix=""):
    for name in coll.tasks:
        yield prefix + name
    for cname, sub in coll.collections.items():
        yield from _task_names(sub, prefix + cname + ".")


@pytest.fixture
def wheel_layout(tmp_path, monkeypatch):
    """This package as a wheel lays it out: the shipped files in swarmbook/_data/."""
    bundled = tmp_path / "site-packages" / "swarmbook" / "_data"
    (bundled / "stacks" / "demo").mkdir(parents=True)
    monkeypatch.setattr(assets, "BUNDLED", bundled)
    return bundled


def test_a_checkout_finds_every_shipped_file_at_its_root():
    assert not assets.installed() and assets.root() == REPO
    for name in assets.SHIPPED:
        assert assets.path(name).exists(), name
    assert config.stacks_path({"STACKS_PATH": ""}) == REPO / "stacks"


def test_an_installed_wheel_finds_them_in_its_package_data(wheel_layout, tmp_path, monkeypatch):
    assert assets.installed() and assets.root() == wheel_layout
    assert config.stacks_path({"STACKS_PATH": ""}) == wheel_layout / "stacks"
    assert config.stacks_path({"STACKS_PATH": "/srv/stacks"}) == Path("/srv/stacks")  # the setting wins
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWARMBOOK_LAB_DIR", raising=False)
    monkeypatch.delenv("SWARMBOOK_LAB_INSTANCE", raising=False)
    assert layout.state_dir() == tmp_path / ".lab"  # no checkout: the lab's state in the folder it runs in


def test_the_sdist_manifest_and_the_build_hook_ship_the_same_files():
    manifest = (REPO / "MANIFEST.in").read_text()
    for name in assets.SHIPPED:
        assert re.search(rf"^(graft|include) {re.escape(name)}$", manifest, re.M), name
    assert "SHIPPED" in (REPO / "setup.py").read_text()  # setup.py copies exactly assets.SHIPPED
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"swarmbook.lab" = ["standin/*"]' in pyproject
    assert not [p for p in (REPO / "swarmbook" / "lab" / "standin").iterdir() if p.is_dir()
                and p.name != "__pycache__"]  # standin/* reaches every file: no sub-folders
    assert 'swarmbook = "swarmbook.cli:main"' in pyproject


def _swarmbook(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        cli.program().run(["swarmbook", *argv], exit=False)
    return out.getvalue()


def test_the_swarmbook_command_lists_the_whole_collection():
    listed = _swarmbook("--list")
    for name in _task_names(ns):
        assert re.search(rf"^  {re.escape(name)}\b", listed, re.M), name
    assert _swarmbook("--version").startswith("swarmbook 0.1.0\n")


def test_the_swarmbook_command_takes_fabrics_host_flags():
    helptext = _swarmbook("--help")
    assert "-H STRING, --hosts=STRING" in helptext and "Usage: swarmbook [--core-opts]" in helptext
    assert "--collection" not in helptext  # bundled: it never looks for a tasks.py


def test_under_the_swarmbook_command_minus_h_picks_the_hosts_as_under_fab(tmp_path, monkeypatch):
    from fabric import Connection

    monkeypatch.chdir(tmp_path)  # no hosts.env here: -H alone is enough
    monkeypatch.delenv("SWARMBOOK_ENV", raising=False)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/swarmbook", "-H", "a,root@b:2222", "swarm.status"])
    settings, specs, key, first = taskdef.targets(Connection("a"), "swarm", None, title="test.product-h")
    assert [(s.user, s.host, s.port) for s in specs] == [("root", "a", 22), ("root", "b", 2222)]
    assert first and not taskdef.targets(Connection("root@b:2222"), "swarm", None, title="test.product-h")[3]


def _readme_runbook() -> str:
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(# tasks\.py\n.*?)```", readme, re.S)
    assert len(blocks) == 1, "README: one ```python block that starts with '# tasks.py'"
    return blocks[0]


def test_the_readme_runbook_composes_the_collection_with_its_own_task(tmp_path):
    (tmp_path / "tasks.py").write_text(_readme_runbook())
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's swarmbook, as if installed
    p = subprocess.run([sys.executable, "-m", "invoke", "--list"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert re.search(r"^  nodes +Show the swarm's nodes", p.stdout, re.M)
    assert re.search(r"^  docker\.install\b", p.stdout, re.M) and re.search(r"^  swarm\.init\b", p.stdout, re.M)
    env["SWARMBOOK_ENV"] = str(tmp_path / "missing.env")  # the task runs, through swarmbook's own checks
    p = subprocess.run([sys.executable, "-m", "invoke", "nodes"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "missing.env not found" in p.stderr, (p.returncode, p.stderr)
