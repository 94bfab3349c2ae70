"""Start-up stays light: `inv --list` loads the task modules, not what only a running task
needs (command builders, engine, SSH stack). Issue 7's target: `inv --list` under 0.3 s."""

import subprocess
import sys
import threading
from pathlib import Path

from swarmbook.lazy import lazy

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_task_collection_loads_no_builders_engine_or_ssh():
    code = ("import sys, invoke; before = set(sys.modules); import tasks; "  # the checkout's tasks.py, as inv
            "print(' '.join(sorted(set(sys.modules) - before)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.split())
    ours = {m for m in loaded if m.startswith("swarmbook") and not m.startswith("swarmbook.tasks")}
    assert ours == {"swarmbook", "swarmbook.errors", "swarmbook.lazy", "swarmbook.taskdef"}  # shell text: in builders
    assert not {"paramiko", "fabric", "tarfile", "hashlib"} & loaded
    assert {"swarmbook.tasks.docker", "swarmbook.tasks.swarm", "swarmbook.tasks.bootstrap"} <= loaded


def test_tasks_deep_copy_cheaply_but_independently():
    import copy

    from swarmbook.tasks import docker

    t = docker.install
    c = copy.deepcopy(t)
    assert c is not t and c.body is t.body and c.help == t.help and c.help is not t.help
    c.positional.append("x")
    assert "x" not in t.positional
    assert c.__signature__ is t.__signature__  # immutable: shared, not rebuilt 60 times per start


def test_a_lazy_module_loads_on_first_use_once_even_from_many_threads():
    name = "swarmbook.lab.creds"  # not loaded by the unit tests' other imports
    sys.modules.pop(name, None)
    mod = lazy(name)
    assert name not in sys.modules and "not loaded yet" in repr(mod)
    got, start = [], threading.Barrier(16)

    def first_use():
        start.wait()
        got.append(mod.__name__)

    threads = [threading.Thread(target=first_use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == [name] * 16 and sys.modules[name].__name__ == name
    assert mod.__dict__ is sys.modules[name].__dict__
