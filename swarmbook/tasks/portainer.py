"""Portainer as a swarm service pinned to one manager, and backup / restore of its data volume.

Assumes an active swarm (swarm.init). The service runs only on the node labelled
portainer=true (PORTAINER_NODE, default the first manager), so it always finds its volume
portainer_data there. Backups are streamed to this machine: NAME.tar + NAME.tar.sha256; the
volume is read and written through PORTAINER_HELPER_IMAGE (default nginx:latest, as in the
runbook), which that manager must be able to pull. portainer.backup refuses when the volume does
not exist there (a `docker run -v` would create it empty and back up nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import portainercmd, backupfile
else:
    portainercmd = lazy("swarmbook.portainercmd")
    backupfile = lazy("swarmbook.backupfile")


def _node_spec(run: Run, specs: list[HostSpec]) -> HostSpec:
    wanted = run.settings["PORTAINER_NODE"]
    if not wanted:
        return specs[0]
    for s in list(run.settings.group("managers")) + specs:
        if s.host == wanted:
            return s
    return run.settings.spec_for(wanted)


def _wait_running(h: Host, timeout: int = 120) -> None:
    h.wait("portainer task running", lambda: portainercmd.running(h.try_run(portainercmd.running_cmd()).stdout), timeout=timeout)


def _answers(h: Host, port: int, timeout: int = 60) -> None:
    h.wait(f"Portainer on http://127.0.0.1:{port}/", lambda: h.try_run(portainercmd.http_ok_cmd(port)).rc == 0,
           timeout=timeout, interval=2)


@cluster_task(group="managers", help={})
def up(run: Run, specs: list[HostSpec]):
    """Run Portainer as a service pinned (node.labels.portainer) to one manager, volume portainer_data."""
    s = run.settings
    argv = portainercmd.create_argv(image=s["PORTAINER_IMAGE"], port=s["PORTAINER_PORT"], publish_mode=s["STACK_PUBLISH_MODE"])
    spec = portainercmd.spec_hash(argv)
    target = _node_spec(run, specs)
    leader_spec = specs[0]
    same = target.host == leader_spec.host
    ready: list[bool] = []

    def body(h: Host) -> None:
        f = h.probe(portainercmd.NODES_FACT, portainercmd.SERVICE_FACT, *(portainercmd.ready_facts(s["PORTAINER_PORT"]) if same else []))
        if f["nodes"] is None:
            h.needs("portainer", "not a swarm manager (run swarm.init)")
        node = portainercmd.pick_node(f["nodes"], target.host) or portainercmd.pick_node(f["nodes"], h.name if target is leader_spec else "")
        if node is None or node["role"] != "manager":
            h.fail("portainer node", f"{target.host} is not a manager of this swarm (PORTAINER_NODE)")
        for other in f["nodes"]:  # exactly one node carries the label
            if other is not node and portainercmd.has_label(other):
                h.change(f"label {portainercmd.LABEL} off {other['hostname']}", portainercmd.label_rm_cmd(other["id"]))
        if portainercmd.has_label(node):
            h.ok(f"label {portainercmd.LABEL}=true on {node['hostname']}")
        else:
            h.change(f"label {portainercmd.LABEL}=true on {node['hostname']}", portainercmd.label_add_cmd(node["id"]))
        svc = f["service"]
        if svc and svc.get("spec") == spec and svc.get("replicas") == 1:
            h.ok("service portainer", s["PORTAINER_IMAGE"])
            ready.append(same and f["portainer_running"] and f["portainer_http"] and not h.changed_any)
            return
        h.change("service portainer", portainercmd.deploy_cmd(argv, spec, replace=bool(svc)), timeout=600,
                 reason=("spec changed; recreated" if svc else "created") + f", pinned to {node['hostname']}")

    run.one(leader_spec, body)
    if run.check or run.failed():
        return
    answered = bool(ready and ready[0])
    run.one(target, lambda h: (None if answered else (_wait_running(h), _answers(h, s["PORTAINER_PORT"])),
                               h.ok("Portainer answers", f"http://{h.name}:{s['PORTAINER_PORT']}/")))


def _validate_backup(settings, to=None, stop=False):
    problem = backupfile.folder_problem(to)
    if problem:
        refuse(f"portainer.backup: {problem}")


def _scaler(run: Run, manager: HostSpec, h: Host):
    """Scale the portainer service from the manager the run has (h when that is it)."""
    if manager.host == h.name:
        return lambda n, step: h.change(step, portainercmd.scale_cmd(n), timeout=600)
    return lambda n, step: run.one(manager, lambda m: m.change(step, portainercmd.scale_cmd(n), timeout=600))


@cluster_task(group="managers", validate=_validate_backup, help={
    "to": "folder on this machine for NAME.tar and NAME.tar.sha256 (existing files are never overwritten)",
    "stop": "stop Portainer (scale 0) while the volume is read, for a consistent copy of its database; "
            "the runbook copies it live",
})
def backup(run: Run, specs: list[HostSpec], to=None, stop=False):
    """Back up the portainer_data volume to --to FOLDER as a timestamped tar plus its sha256."""
    import base64

    target = _node_spec(run, specs)
    helper = run.settings["PORTAINER_HELPER_IMAGE"]

    def body(h: Host) -> None:
        volume = h.probe(portainercmd.VOLUME_FACT)["volume"]
        if volume is None:
            h.fail("backup", f"Docker on {h.name} did not answer (is it running?); nothing written")
        if not volume:
            h.fail("backup", f"no volume {portainercmd.VOLUME} on {h.name}: Portainer keeps its data elsewhere "
                             f"(PORTAINER_NODE names that manager) or never ran (portainer.up); nothing written")
        scale = _scaler(run, specs[0], h)
        if stop:
            scale(0, "stop portainer for the copy (scale 0)")
        try:
            if stop and not h.check:
                h.wait("portainer task gone", lambda: not portainercmd.running(h.try_run(portainercmd.running_cmd()).stdout), timeout=120)
            out = h.run(portainercmd.backup_cmd(helper), step="tar portainer_data", timeout=900).stdout.split("\n")
        finally:  # whatever happened, Portainer runs again
            if stop:
                scale(1, "start portainer (scale 1)")
        if stop and not h.check:
            _wait_running(h)
        remote_sum, data = out[0].strip(), base64.b64decode(out[1].strip() if len(out) > 1 else "")
        digest = portainercmd.sha256(data)
        if digest != remote_sum:
            h.fail("backup", f"transfer corrupted: sha256 {digest[:12]} here, {remote_sum[:12]} on {h.name}")
        name = portainercmd.backup_name(h.name, backupfile.stamp())
        tar = Path(to) / name
        if h.check:
            h.ok("backup", f"would write {tar}")
            return
        try:
            backupfile.write(to, name, data)
        except FileExistsError:
            h.fail("backup", f"{tar} already exists; backups are never overwritten (retry in a second)")
        # the hosts are unchanged: a backup is a read, so it reports ok (with where it went)
        h.ok("backup", f"{tar} ({len(data)} bytes, sha256 {digest[:12]}...)")

    run.one(target, body)


def _read_backup(file: str) -> bytes:
    data = backupfile.read_checked(file, "portainer.restore")
    bad = portainercmd.check_tar(data)
    if bad:
        refuse(f"{file} is not a Portainer backup: {bad}")
    return data


def _validate_restore(settings, file=None, yes=False):
    if not file:
        refuse("portainer.restore needs the backup FILE (e.g. backups/portainer-h1-20260101T000000Z.tar)")
    _read_backup(file)
    if not yes:
        refuse("portainer.restore replaces everything in the portainer_data volume and stops Portainer "
               "meanwhile: rerun with --yes")


@cluster_task(group="managers", validate=_validate_restore, positional=["file"], help={
    "file": "backup tar made by portainer.backup (its .sha256 must be beside it)",
    "yes": "confirm: the volume's current content is replaced",
})
def restore(run: Run, specs: list[HostSpec], file=None, yes=False):
    """Restore portainer_data from a checked backup: scale to 0, replace the volume, start, verify."""
    data = _read_backup(file)
    want = sorted(portainercmd.manifest(data).splitlines())
    target = _node_spec(run, specs)
    port = run.settings["PORTAINER_PORT"]
    helper = run.settings["PORTAINER_HELPER_IMAGE"]

    def current(h: Host) -> list[str]:
        res = h.try_run(portainercmd.manifest_cmd(helper))
        return sorted(res.stdout.splitlines()) if res.rc == 0 else []

    def body(h: Host) -> None:
        if current(h) == want:
            h.ok("portainer_data", f"already holds {Path(file).name}")
            return
        scale = _scaler(run, specs[0], h)
        scale(0, "stop portainer (scale 0)")
        try:
            if not h.check:
                h.wait("portainer task gone", lambda: not portainercmd.running(h.try_run(portainercmd.running_cmd()).stdout), timeout=120)
            h.change("restore portainer_data", portainercmd.restore_cmd(helper), stdin=data, reason=Path(file).name, timeout=900)
        finally:  # whatever happened, Portainer runs again
            scale(1, "start portainer (scale 1)")
        if h.check:
            return
        if current(h) != want:
            raise StepFailed("verify: the volume's files differ from the backup after restore")
        _wait_running(h)
        _answers(h, port)
        h.ok("verified", "every file matches the backup; Portainer answers")

    run.one(target, body)


ns = Collection("portainer", up, backup, restore)
