"""swarmbook's root namespace, shared by `inv` (this package) and `fab` (fabfile.py)."""

from invoke import Collection

from . import bootstrap, docker, image, lock, net, registry, sshd, stack, swarm

ns = Collection(docker, sshd, swarm, net, registry, image, stack, lock)
ns.add_task(bootstrap.bootstrap_all)
ns.configure({
    # Tasks print their own per-host lines and recap; keep Invoke's echo off.
    "run": {"echo": False},
})
try:  # the lab collection (local Docker containers as hosts); optional at import time
    from . import lab
    ns.add_collection(lab.ns)
except ImportError:  # pragma: no cover
    pass
