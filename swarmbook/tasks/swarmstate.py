"""The swarm's own state: backup and restore (Docker's admin guide, "Back up the swarm" and
"Recover from disaster") and autolock. These are tasks of the ``swarm`` collection
(``swarm.backup``, ``swarm.restore``, ``swarm.autolock``), kept apart from membership.

Assumes Docker and an active swarm (swarm.init); backups go to a folder on this machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

AREA = "swarm"  # task titles read swarm.backup, not swarmstate.backup

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import facts, swarmcmd, raftcmd, raftkey, backupfile, validate
else:
    facts = lazy("swarmbook.facts")
    swarmcmd = lazy("swarmbook.swarmcmd")
    raftcmd = lazy("swarmbook.raftcmd")
    raftkey = lazy("swarmbook.raftkey")
    backupfile = lazy("swarmbook.backupfile")
    validate = lazy("swarmbook.validate")


# --- the swarm's own state: backup and restore (Docker's admin guide) -----------------------

def _validate_backup(settings, to=None, offline=False):
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"swarm.backup: {problem}")


@cluster_task(group="managers", validate=_validate_backup, help={
    "to": "folder on this machine for swarm-HOST-TIME.tar.gz, its .sha256 and, with autolock, .unlock-key (0600)",
    "offline": "allow the backup on a cluster whose managers would lose quorum while one is stopped "
               "(one manager: the swarm cannot be managed for those seconds; services keep running)",
})
def backup(run: Run, specs: list[HostSpec], to=None, offline=False):
    """Back up one manager's swarm state: stop its engine, archive /var/lib/docker/swarm, start, wait until reachable."""
    import base64
    import time

    from swarmbook.shell import Secret

    def body(h: Host) -> None:
        f = h.probe(facts.docker_info(), raftcmd.NODES)
        sw = swarmcmd.parse_swarm(f["docker_info"])
        if not sw.is_manager or f["nodes"] is None:
            h.fail("backup", f"{h.name} is not a manager of an active swarm ({sw.state}); nothing stopped")
        managers, reachable = raftcmd.quorum(f["nodes"])
        if raftcmd.loses_quorum(managers, reachable) and not offline:
            h.fail("backup", f"stopping {h.name} leaves {reachable - 1} of {managers} managers: the swarm would lose "
                             "quorum (add managers, or --offline to accept it for the seconds of the copy); nothing stopped")
        locked = bool((((f["docker_info"] or {}).get("Swarm") or {}).get("Cluster") or {}).get("Spec", {})
                      .get("EncryptionConfig", {}).get("AutoLockManagers"))
        if h.check:
            h.ok("backup", f"would stop the engine on {h.name} and archive {raftcmd.SWARM_DIR}")
            return
        key = h.run(raftcmd.UNLOCK_KEY_CMD, step="unlock key").stdout.strip() if locked else ""
        if key:
            run.reporter.mask.add(Secret(key))
        t0 = time.monotonic()
        h.run(raftcmd.stop_engine_cmd(), step="stop engine", timeout=120)
        try:
            out = h.run(raftcmd.archive_cmd(), step=f"archive {raftcmd.SWARM_DIR}", timeout=900).stdout.split("\n")
        finally:  # whatever happened, the engine runs again (and, with autolock, unlocked)
            _start_unlocked(h, key)
        h.wait(f"{h.name} to be a reachable manager again", lambda: h.probe(raftcmd.NODES_ANSWER)["manager"],
               timeout=180, interval=1)
        out_for = time.monotonic() - t0
        remote_sum, data = out[0].strip(), base64.b64decode(out[1].strip() if len(out) > 1 else "")
        if backupfile.sha256(data) != remote_sum:
            h.fail("backup", f"transfer corrupted: sha256 {backupfile.sha256(data)[:12]} here, {remote_sum[:12]} "
                             f"on {h.name}; nothing written")
        name = backupfile.name("swarm", h.name, backupfile.stamp(), "tar.gz")
        try:
            path, digest = backupfile.write(to, name, data)
        except FileExistsError:
            h.fail("backup", f"{name} already exists in {to}; backups are never overwritten (retry in a second)")
        if key:
            backupfile.write_private(f"{path}.unlock-key", key + "\n")
        h.ok("backup", f"{path} ({len(data)} bytes, sha256 {digest[:12]}...; {h.name} out for {out_for:.1f}s"
                       f"{'; unlock key saved beside it (0600)' if key else ''})")

    # a manager that is not the leader, so leadership does not move (the first one otherwise)
    run.one(specs[-1] if len(specs) > 1 else specs[0], body)


def _start_unlocked(h: Host, key: str) -> None:
    """Start the engine; with autolock on, unlock the manager with ``key`` once it answers."""
    from swarmbook.shell import Secret

    h.run(raftcmd.start_engine_cmd(), step="start engine", timeout=300)
    if key:
        h.wait("the engine to answer", lambda: swarmcmd.parse_swarm(
            h.probe(facts.docker_info())["docker_info"]).state != "unknown", timeout=120, interval=1)
        h.run(raftcmd.unlock_cmd(), stdin=Secret(key), step="unlock")


def _read_swarm_backup(file: str | None) -> bytes:
    data = backupfile.read_checked(file, "swarm.restore")
    bad = raftcmd.check_archive(data)
    if bad:
        refuse(f"{file} is not a swarm.backup archive: {bad}; nothing was touched")
    return data


def _restorable(file: str | None) -> tuple[bytes, str]:
    """The archive to send, its node key opened when autolock was on at backup time (Docker
    cannot --force-new-cluster a locked manager: swarmbook.raftkey), and the unlock key."""
    from pathlib import Path

    data = _read_swarm_backup(file)
    key_file = Path(f"{file}.unlock-key")
    key = key_file.read_text().strip() if key_file.is_file() else ""
    try:
        if not raftkey.archive_locked(data):
            return data, key
        if not key:
            refuse(f"{file} was taken with autolock on and {key_file} is missing: put the unlock key of backup "
                   "time there (one line, 0600); nothing was touched")
        return raftkey.open_archive(data, key), key
    except raftkey.WrongKey as exc:
        refuse(f"{key_file.name}: {exc}; nothing was touched")


def _validate_restore(settings, file=None, yes=False, force=False, advertise_addr=None, targets=()):
    data, _ = _restorable(file)
    if advertise_addr and not validate.is_ip(advertise_addr):
        refuse(f"--advertise-addr {advertise_addr!r} is not an IP address")
    moved = _address_problem(raftcmd.archive_origin(data), [t.host for t in targets], advertise_addr)
    if moved:
        refuse(moved)
    if not yes:
        refuse("swarm.restore replaces this manager's swarm state and makes it a new one-manager cluster "
               "(--force-new-cluster): rerun with --yes")


def _address_problem(origin: str, managers: list[str], advertise_addr: str | None) -> str:
    """Why the backup cannot be restored where it would go ('' when it can). The restored raft
    state keeps the backed-up manager's address whatever --force-new-cluster --advertise-addr
    says (docker/for-linux#523; measured on 28.5: ManagerStatus.Addr stayed the old one): nodes
    joined to a manager restored elsewhere learn that address, and a worker whose engine
    restarts then stays pending, Down, for good."""
    if not origin:
        return ""
    advertised = advertise_addr or origin
    if origin in managers and advertised == origin:
        return ""
    where = (f"--advertise-addr {advertise_addr}" if origin in managers else
             f"the managers listed ({', '.join(managers) or 'none'}) do not include {origin}")
    return (f"this backup's manager advertised {origin}, and the restored swarm keeps that address whatever "
            f"--advertise-addr says (docker/for-linux#523): {where}; restore onto a machine at {origin} "
            "(give the replacement that address and list it in MANAGERS); nothing was touched")


@cluster_task(group="managers", validate=_validate_restore, positional=["file"], help={
    "file": "a swarm.backup archive (its .sha256 beside it; its .unlock-key too when autolock was on)",
    "yes": "confirm: this manager's swarm state is replaced",
    "force": "restore even onto a manager of a healthy swarm",
    "advertise-addr": "the restored manager's address (default: its address in hosts.env); it must be the "
                      "address the backup's manager advertised (Docker keeps that one in the restored state)",
})
def restore(run: Run, specs: list[HostSpec], file=None, yes=False, force=False, advertise_addr=None):
    """Restore a swarm.backup onto the machine at its manager's address: replace its swarm state, --force-new-cluster."""
    from pathlib import Path

    from swarmbook.shell import Secret

    data, key = _restorable(file)
    if key:
        run.reporter.mask.add(Secret(key))
    origin = raftcmd.archive_origin(data)
    # the node's identity (and its labels) stays with the machine it belongs to
    target = next((s for s in specs if s.host == origin), specs[0])  # listed: _validate_restore checked it
    where = (f"{target.host}, the manager the backup was taken on" if origin else
             f"{target.host}, the first manager (the archive does not say which address it came from)")

    def body(h: Host) -> None:
        addr = advertise_addr or (h.spec.host if validate.is_ip(h.spec.host) else "")
        if not addr:
            h.fail("restore", f"{h.name} is a name, not an address: give --advertise-addr")
        f = h.probe(facts.docker_info(), raftcmd.NODES_ANSWER)
        sw = swarmcmd.parse_swarm(f["docker_info"])
        if sw.state == "unknown":
            h.fail("restore", f"Docker on {h.name} does not answer (docker.install); nothing touched")
        if sw.is_manager and f["manager"] and not force:
            h.fail("restore", f"{h.name} is a manager of a healthy swarm: restoring would replace it "
                              "(--force to do it anyway); nothing touched")
        h.change("stop engine", raftcmd.stop_engine_cmd(), timeout=120)
        try:
            h.change(f"replace {raftcmd.SWARM_DIR}", raftcmd.replace_cmd(), stdin=data, reason=f"{Path(file).name} onto "
                     f"{where}{'; node key opened with the unlock key of backup time' if key else ''}", timeout=900)
        finally:
            h.change("start engine", raftcmd.start_engine_cmd(), timeout=300)
        if h.check:
            return
        h.change("force new cluster", raftcmd.force_new_cluster_cmd(addr, autolock=bool(key)),
                 reason=f"advertise {addr}{', autolock kept on' if key else ''}", timeout=300)
        def manages() -> bool:
            return bool(h.probe(raftcmd.NODES_ANSWER)["manager"])

        h.wait(f"{h.name} to manage the restored swarm", manages, timeout=180, interval=1)
        # measured on 28.5: after --force-new-cluster the node's overlay network agent stays off
        # ("cannot create a swarm scoped network when swarm is not active" for every task and
        # attachable container there, 10 minutes on) until the engine restarts (moby/moby#36860,
        # docker/for-linux#495)
        h.change("restart engine", raftcmd.stop_engine_cmd(), timeout=120,
                 reason="so the overlay network agent starts under the restored cluster")
        _start_unlocked(h, key)
        h.wait(f"{h.name} to manage the restored swarm after the restart", manages, timeout=180, interval=1)
        locked, _ = raftcmd.autolock_of(h.probe(facts.docker_info())["docker_info"])
        h.ok("restored", "services, configs, secrets, networks and node labels are back"
                         f"{'; autolock on, the same unlock key' if locked else ''}; NOT restored: standalone "
                         "containers and images not in a registry. Next: swarm.init joins the other hosts, then "
                         "stack.deploy of each stack restarts a task swarm gave up on")

    run.one(target, body)


def _validate_autolock(settings, on=False, off=False, rotate=False, show=False):
    if sum(map(bool, (on, off, rotate, show))) != 1:
        refuse("swarm.autolock needs one of --on, --off, --rotate, --show")


@cluster_task(group="managers", validate=_validate_autolock, help={
    "on": "lock managers on restart: the key is kept on this machine (SWARM_KEYS_DIR, 0600), never printed",
    "off": "stop locking managers on restart",
    "rotate": "make a new unlock key (the old one stops working) and keep it",
    "show": "print the kept key (the only way it is ever printed)",
})
def autolock(run: Run, specs: list[HostSpec], on=False, off=False, rotate=False, show=False):
    """Turn the swarm's autolock on or off, rotate its unlock key; the key is kept locally 0600, shown only with --show."""
    from pathlib import Path

    from swarmbook.shell import Secret

    keys = Path(run.settings["SWARM_KEYS_DIR"])

    def keep(h: Host, cluster: str, key: str) -> None:
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = keys / f"{cluster}.key"
        if path.is_file() and path.read_text().strip() == key:
            h.ok("unlock key kept", str(path))
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        backupfile.write_private(tmp, key + "\n")
        tmp.replace(path)
        h.ok("unlock key kept", f"{path} (0600)")

    def body(h: Host) -> None:
        locked, cluster = raftcmd.autolock_of(h.probe(facts.docker_info())["docker_info"])
        if not cluster:
            h.fail("autolock", f"{h.name} is not a manager of an active swarm (swarm.init)")
        path = keys / f"{cluster}.key"
        if show:
            if not path.is_file():
                h.fail("autolock", f"no key kept for cluster {cluster} in {keys}")
            run.reporter.out.write(path.read_text())
            h.ok("autolock", f"{'on' if locked else 'off'}; key shown from {path}")
            return
        if off:
            if locked:
                h.change("autolock off", raftcmd.autolock_cmd(False))
            else:
                h.ok("autolock off")
            return
        if on and not locked:
            h.change("autolock on", raftcmd.autolock_cmd(True))
        elif on:
            h.ok("autolock on")
        if rotate and not locked:
            h.fail("autolock", "autolock is off: there is no unlock key to rotate (--on first)")
        if h.check:
            if rotate:
                h.change("rotate unlock key")
            return
        key = h.run(raftcmd.ROTATE_KEY_CMD if rotate else raftcmd.UNLOCK_KEY_CMD, step="unlock key").stdout.strip()
        run.reporter.mask.add(Secret(key))
        if rotate:
            h.change("rotate unlock key", None, reason="the old key no longer unlocks")
        keep(h, cluster, key)

    run.one(specs[0], body)
