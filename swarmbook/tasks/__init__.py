"""swarmbook's root namespace: the `swarmbook` command's, and in a checkout `inv`'s (tasks.py)
and `fab`'s (fabfile.py). Your own tasks.py composes its modules: `from swarmbook.tasks import docker`."""

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
