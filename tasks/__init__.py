"""swarmbook's root namespace, shared by `inv` (this package) and `fab` (fabfile.py)."""

import sys
from pathlib import Path

# The tasks and the library of this checkout belong together, whatever else pip installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from invoke import Collection  # noqa: E402

from . import bootstrap, doctor, docker, image, lock, net, registry, sshd, stack, swarm  # noqa: E402
from . import cron, gitlab, kernel, kong, mysql, portainer, runner  # noqa: E402  (issue 5)
from . import swarmstate  # noqa: E402  (swarm.backup, swarm.restore: the swarm collection's, in a module of their own)
from . import node  # noqa: E402  (issue 14: day 2)
from . import backup  # noqa: E402  (issue 15: backup.all, backup.cron)

ns = Collection(docker, sshd, swarm, node, net, registry, image, stack, lock,
                gitlab, runner, portainer, kong, mysql, cron, kernel, backup)
ns.collections["swarm"].add_task(swarmstate.backup)
ns.collections["swarm"].add_task(swarmstate.restore)
ns.collections["swarm"].add_task(swarmstate.autolock)
ns.add_task(bootstrap.bootstrap_all)
ns.add_task(doctor.doctor)
ns.configure({
    # Tasks print their own per-host lines and recap; keep Invoke's echo off.
    "run": {"echo": False},
})
try:  # the lab collection (local Docker containers as hosts); optional at import time
    from . import lab
    ns.add_collection(lab.ns)
except ImportError:  # pragma: no cover
    pass
