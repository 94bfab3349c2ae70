"""Docker engine on every host: install it, add the SSH user to the docker group, set mirrors;
upgrade it across a running swarm one node at a time (docker.upgrade, Debian's docker.io).

Assumes systemd hosts of the Debian/Ubuntu or RHEL/CentOS/TencentOS families.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, host_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import dockercmd, facts, files, ops, oscmd, tls, config, nodeops, upgrade as upgrade_plan, upgradeops
else:
    dockercmd = lazy("swarmbook.dockercmd")
    facts = lazy("swarmbook.facts")
    files = lazy("swarmbook.files")
    ops = lazy("swarmbook.ops")
    oscmd = lazy("swarmbook.oscmd")
    tls = lazy("swarmbook.tls")
    config = lazy("swarmbook.config")
    nodeops = lazy("swarmbook.nodeops")
    upgrade_plan = lazy("swarmbook.upgrade")
    upgradeops = lazy("swarmbook.upgradeops")


def _check_install(settings, method=None, version=None):
    method = settings.get("DOCKER_INSTALL_METHOD", method)
    if method not in dockercmd.METHODS:
        refuse(f"--method {method!r} is not one of {', '.join(dockercmd.METHODS)}")
    version = settings.get("DOCKER_VERSION", version)
    if version and dockercmd.bad_version(version):
        refuse(dockercmd.bad_version(version))


@host_task(group="all", validate=_check_install, help={
    "method": "script (get.docker.com, the runbook's way) or distro (OS packages); "
              "default DOCKER_INSTALL_METHOD",
    "version": "engine version to install, a prefix such as 28.5 or 26.1.5 (default DOCKER_VERSION; "
               "empty: what the package source offers first). A host that has Docker keeps it.",
})
def install(h: Host, method=None, version=None):
    """Install curl and Docker (engine and CLI) and start it (no-op when present); add the SSH user to the docker group."""
    method = h.settings.get("DOCKER_INSTALL_METHOD", method)
    version = h.settings.get("DOCKER_VERSION", version)
    user = h.spec.user
    f = h.probe(facts.OS_RELEASE, facts.command_exists("dockerd"), facts.command_exists("docker"), facts.command_exists("curl"),
                facts.unit_state("docker"), facts.user_groups(user), *([facts.ENGINE_VERSION] if version else []))
    family = facts.os_family(f["os"])
    installed_now = False
    if f["has:curl"]:  # get.docker.com is fetched with it; later tasks read the engine API with it
        h.ok("curl installed")
    elif family == "unknown":
        h.fail("curl", "curl is missing and the OS family is unknown: install curl first")
    else:
        ops.ensure_packages(h, family, ["curl"], installed=set())
    if f["has:dockerd"] and f["has:docker"]:
        engine = f.get("engine_version")
        if version and engine and not dockercmd.version_matches(engine, version):
            h.note(f"engine {engine} is installed, not DOCKER_VERSION {version}: docker.install does not "
                   "replace an engine", level="warning")
        h.ok("docker installed", f"engine {engine}" if engine else "")
    elif method == "script":
        h.change("install docker (get.docker.com)", dockercmd.get_docker_cmd(version), timeout=1800)
        installed_now = True
    else:
        installed_now = _install_distro(h, family, f["os"], version, cli_only=f["has:dockerd"])
    unit = f["unit:docker"]
    docker_changed = ops.ensure_service(h, "docker", active=unit["active"] and not installed_now,
                                        enabled=unit["enabled"] and not installed_now) or installed_now
    if user != "root":
        docker_changed |= ops.ensure_in_group(h, user, "docker", groups=f[f"groups:{user}"])
    if docker_changed and not h.check:  # (curl alone does not need it)
        engine = h.run(dockercmd.SERVER_VERSION_CMD, step="verify docker").stdout.strip()
        if version and not dockercmd.version_matches(engine, version):
            h.fail("verify docker", f"engine {engine} answers, not DOCKER_VERSION {version}")
        h.ok("docker answers", f"engine {engine}")


def _install_distro(h: Host, family: str, os_release: dict, version: str, *, cli_only: bool) -> bool:
    """The OS's engine packages (the docker CLI alone where dockerd is there already)."""
    if family not in dockercmd.DISTRO_PACKAGES:
        h.fail("install docker", f"no distro packages known for {os_release.get('ID', '?')}; use --method script")
    if family != "debian":
        if version:
            h.fail("install docker", "DOCKER_VERSION with --method distro needs apt (Debian/Ubuntu); "
                                     "use --method script (get.docker.com --version)")
        return ops.ensure_packages(h, family, dockercmd.DISTRO_PACKAGES[family], installed=set())
    wanted = ["docker.io", dockercmd.DEBIAN_CLI]
    offered = h.probe(facts.apt_versions(wanted))["apt_versions"]
    if not offered.get("docker.io"):  # lists missing or stale: apt learns what its sources offer
        h.change("package lists", oscmd.refresh_cmd(family), reason="apt knows no docker.io yet")
        if h.check:
            h.ok("install docker", "would install docker.io (and docker-cli where offered)")
            return True
        offered = h.probe(facts.apt_versions(wanted))["apt_versions"]
    try:
        packages = dockercmd.engine_packages(offered, version, cli_only=cli_only)
    except ValueError as exc:
        h.fail("install docker", str(exc))
    return ops.ensure_packages(h, family, packages, installed=set())


def _check_upgrade(settings, version=None, downgrade=False, timeout=300):
    version = settings.get("DOCKER_VERSION", version)
    if version and dockercmd.bad_version(version):
        refuse(dockercmd.bad_version(version))
    if int(timeout) <= 0:
        refuse("--timeout must be a positive number of seconds")


@cluster_task(group="managers", validate=_check_upgrade, help={
    "version": "engine version to upgrade to, a prefix such as 28.5 (default DOCKER_VERSION; empty: the newest "
               "each host's package sources offer)",
    "downgrade": "allow a version older than the installed one",
    "timeout": "seconds to wait for each node's tasks to move, for it to be ready again and for the services "
               "to converge (default 300)",
})
def upgrade(run: Run, specs: list[HostSpec], version=None, downgrade=False, timeout=300):
    """Upgrade the engine one node at a time, managers first: drain, upgrade docker.io, restart, wait until ready, activate."""
    version = run.settings.get("DOCKER_VERSION", version)
    _, nodes = nodeops.control(run, specs)
    reach = upgradeops.ssh_specs(run, nodes)
    plan = upgrade_plan.plan(nodes, upgradeops.probe(run, reach), {i: str(s) for i, s in reach.items()},
                             version, downgrade=downgrade)
    if plan.problems:
        refuse("docker.upgrade changed nothing: " + "; ".join(plan.problems))
    upgradeops.show(run, plan)
    upgradeops.roll(run, list(specs), plan, reach, int(timeout))


def _wanted_mirrors(settings, mirrors=None) -> list[str]:
    wanted = list(settings["DOCKER_MIRRORS"]) if mirrors is None else [m.strip() for m in mirrors.split(",") if m.strip()]
    for m in wanted:
        if dockercmd.bad_mirror(m):
            refuse(dockercmd.bad_mirror(m))
    return wanted


@host_task(group="all", validate=_wanted_mirrors, help={
    "mirrors": "comma list of mirror URLs (default DOCKER_MIRRORS); an empty string removes them",
})
def mirrors(h: Host, mirrors=None):
    """Merge registry mirrors into /etc/docker/daemon.json; validate, restart only on change."""
    wanted = _wanted_mirrors(h.settings, mirrors)
    f = h.probe(facts.command_exists("dockerd"), facts.file_state(dockercmd.DAEMON_JSON, "daemon"), facts.docker_info())
    if not f["has:dockerd"]:
        h.needs("mirrors", "docker is not installed (run docker.install first)")
    current = f["daemon"]["content"] if f["daemon"] else ""
    try:
        if not wanted and '"registry-mirrors"' not in current:
            h.ok("registry mirrors", "none configured")
            return
        new = files.merged_json(current, {"registry-mirrors": wanted})
    except files.BadJSON as exc:
        raise StepFailed(f"{dockercmd.DAEMON_JSON} is {exc}; fix it by hand, nothing was changed") from None
    if new == current:
        info = f["docker_info"]
        running = {m.rstrip("/") for m in ((info or {}).get("RegistryConfig") or {}).get("Mirrors") or []}
        if info is not None and any(m.rstrip("/") not in running for m in wanted):
            # the file is right but the engine never restarted with it (e.g. an earlier run was killed)
            h.change("registry mirrors", dockercmd.restart_engine_cmd(), reason="daemon.json not applied yet; docker restarted")
        else:
            h.ok("registry mirrors", ", ".join(wanted))
        return
    h.change("registry mirrors", dockercmd.replace_engine_files({dockercmd.DAEMON_JSON: new}),
             reason=f"{', '.join(wanted) or 'removed'}; docker restarted")
    if not h.check:
        got = h.run(dockercmd.MIRRORS_CMD, step="verify mirrors").stdout
        missing = [m for m in wanted if m.rstrip("/") not in got]
        if missing:
            h.fail("verify mirrors", f"docker info does not list {', '.join(missing)}")




TLS_KEYS = ("tls", "tlsverify", "tlscacert", "tlscert", "tlskey")


def _check_tcp(settings, insecure=False, bind=None, port=None):
    if insecure and not bind:
        refuse("--insecure needs --bind ADDRESS: an unauthenticated Docker API must not listen everywhere")
    if bind:
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            refuse(f"--bind {bind!r} is not an IP address")
    if port is not None:
        config.parse_port(str(port), "--port")


@host_task(group="all", validate=_check_tcp, help={
    "insecure": "plain TCP without TLS (the runbook's 2375): anyone who reaches it owns the host; needs --bind",
    "bind": "address the API listens on (default 0.0.0.0 with TLS; required with --insecure)",
    "port": "port (default 2376 with TLS, 2375 with --insecure)",
})
def tcp(h: Host, insecure=False, bind=None, port=None):
    """Open the Docker API over TCP: TLS with client certificates on 2376 (default), via a drop-in."""
    port = int(port or (2375 if insecure else 2376))
    listen = f"tcp://{bind or '0.0.0.0'}:{port}"
    tls_dir = Path(h.settings["DOCKER_TLS_DIR"])
    f = h.probe(facts.unit_file("docker.service", "unit"),
                facts.file_state(dockercmd.DAEMON_JSON, "daemon"), facts.file_state(dockercmd.TCP_DROPIN, "dropin"),
                *[facts.file_state(f"{dockercmd.TLS_DIR}/{n}", n) for n in ("ca.pem", "server-cert.pem", "server-key.pem")],
                facts.unit_stale("docker", [dockercmd.DAEMON_JSON, dockercmd.TCP_DROPIN]))
    if not f["unit"]:
        h.needs("docker tcp", "docker is not installed (run docker.install first)")
    restart = False
    if insecure:
        h.note(f"WARNING: Docker API without TLS on {listen}: anyone who can reach it controls this host",
               level="warning")
        updates, drop = {}, TLS_KEYS
    else:
        cert, key = tls.server_cert(tls_dir, h.name, [h.name, "127.0.0.1", "localhost"])
        ca = (tls_dir / "ca.pem").read_text()
        for name, content, mode in (("ca.pem", ca, "0644"), ("server-cert.pem", cert, "0644"),
                                    ("server-key.pem", key, "0600")):
            restart |= ops.put_file(h, f"{dockercmd.TLS_DIR}/{name}", content, mode=mode, state=f[name],
                                    secret=name.endswith("key.pem"), step=f"TLS {name}")
        updates = {"tls": True, "tlsverify": True, "tlscacert": f"{dockercmd.TLS_DIR}/ca.pem",
                   "tlscert": f"{dockercmd.TLS_DIR}/server-cert.pem", "tlskey": f"{dockercmd.TLS_DIR}/server-key.pem"}
        drop = ()
    current = f["daemon"]["content"] if f["daemon"] else ""
    try:
        daemon = files.merged_json(current, updates, drop=drop) if (updates or current.strip()) else current
    except files.BadJSON as exc:
        raise StepFailed(f"{dockercmd.DAEMON_JSON} is {exc}; fix it by hand, nothing was changed") from None
    dropin = dockercmd.tcp_dropin(dockercmd.exec_start(f["unit"]), listen, plain=insecure)
    if daemon != current or dropin != (f["dropin"] or {}).get("content") or restart:
        h.change(f"docker API on {listen}", dockercmd.replace_engine_files({dockercmd.DAEMON_JSON: daemon, dockercmd.TCP_DROPIN: dropin}),
                 reason="TLS, client certificate required" if not insecure else "NO TLS (--insecure)")
    elif f["stale:docker"]:  # files right, engine never restarted with them (e.g. a killed run)
        h.change(f"docker API on {listen}", dockercmd.restart_engine_cmd(),
                 reason="config written earlier but not applied; docker restarted")
    else:
        h.ok(f"docker API on {listen}")
    if h.check:
        return
    try:
        h.wait(f"docker API on {h.name}:{port}", lambda: _answers(h.name, port, None if insecure else tls_dir),
               timeout=30)
    except StepFailed:
        h.fail("verify docker API", f"no answer on {h.name}:{port} from this machine")
    h.ok("docker API answers", f"{'TLS verified' if not insecure else 'plain TCP'} from this machine")


def _answers(host: str, port: int, tls_dir) -> bool:
    try:
        tls.api_version(host, port, tls_dir)
        return True
    except Exception:  # noqa: BLE001 - still starting, or refused: wait() reports the timeout
        return False


ns = Collection("docker", install, upgrade, mirrors, tcp)
