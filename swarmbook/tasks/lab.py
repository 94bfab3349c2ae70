"""Lab tasks: local Debian 12 hosts (containers with systemd + sshd) and a TLS registry.

swarmbook.lab is imported inside each task so that `inv --list` stays fast.
"""

from __future__ import annotations

import json as jsonlib

from invoke import Collection, Exit, task

from swarmbook.taskdef import SwarmbookTask, modes


def _lab():
    from swarmbook import lab

    return lab


ENGINE_HELP = (
    "Docker engine the hosts offer to docker.install: 20.10 (Debian 12 hosts), 26.1 (Debian 13), "
    "28.5 (Debian 13 hosts whose apt has sid's engine, pinned); one for every host or a comma list, "
    "one per host, for a mixed cluster. Default: $SWARMBOOK_LAB_ENGINE (same forms), else each "
    "existing host keeps its own and new hosts get 28.5. The Debian release follows from the engine (there is no --os: "
    "each engine has one release here), and a host made for another engine is recreated."
)


@task(klass=SwarmbookTask,  # the flags of every task: -h is help, no short flag from a name's letters
      help={"hosts": "number of lab hosts to run (h1 manager, the rest workers; default 3)",
            "engine": ENGINE_HELP})
def up(c, hosts=3, engine=None):
    """Create the lab hosts, registry and .lab/hosts.env (idempotent)."""
    from swarmbook.errors import ConfigError
    from swarmbook.validate import whole

    lab = _lab()
    try:
        info = lab.up(hosts=whole(hosts, "--hosts"), engine=engine)
    except (ConfigError, lab.LabInputError) as e:  # bad input: one line, exit 2, nothing made
        raise Exit(f"lab.up: {e}", code=2) from None
    except lab.LabError as e:
        raise Exit(f"lab.up: {e}", code=1) from None
    for h in info.hosts:
        print(f"{h.hostname:4} {h.addr:15} {h.name}  (engine {h.engine})")
    print(f"registry  {info.registry} (mirror :5001), CA {info.ca}")
    print(f"hosts.env {info.hosts_env}")
    print("changed: " + ("; ".join(info.changed) if info.changed else "nothing"))


@task(klass=SwarmbookTask, help={"json": "print the full status as one JSON document (also SWARMBOOK_JSON=1)"})
def status(c, json=False):
    """Show which lab containers, services, registries and network exist, and their memory."""
    lab = _lab()
    st = lab.status()
    st["memory"] = lab.memory()
    if modes(False, json)[1]:
        print(jsonlib.dumps(st, indent=2, default=str))
        return
    print(f"state dir {st['state_dir']}  docker={'up' if st['docker'] else 'DOWN'}  "
          f"image={'yes' if st['image'] else 'no'}")
    net = st["network"]
    print(f"network   {net['name']} {net['subnet']}" if net else "network   none")
    for port, r in st["registry"].items():
        print(f"registry  :{port} {'up' if r['up'] else 'down'}")
    for h in st["hosts"]:
        print(f"{h['hostname']:4} {h['addr']:15} container={h['container']} "
              f"systemd={h['systemd']} sshd={h['sshd']} release={h['release']} "
              f"engine={h['engine']} (lab offers {h['engine_wanted']})")
    if not st["hosts"]:
        print("hosts     none")
        return
    mem = st["memory"]
    per_host = ", ".join(f"{name} {m['rss_mib']:.0f}" for name, m in mem["hosts"].items())
    print(f"memory    resident {mem['total']['rss_mib']:.0f} MiB RSS ({mem['total']['pss_mib']:.0f} MiB PSS) "
          f"in {mem['total']['processes']} processes; RSS MiB per host: {per_host}; "
          f"registries/apt {mem['lab_processes']['rss_mib']:.0f}")


@task(klass=SwarmbookTask)
def down(c):
    """Remove the lab's containers, network, registry and data (keeps the image cache)."""
    _lab().down()


ns = Collection("lab")
ns.add_task(up)
ns.add_task(status)
ns.add_task(down)
