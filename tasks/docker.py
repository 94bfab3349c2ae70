"""Docker engine on every host: install it, add the SSH user to the docker group, set mirrors.

Assumes systemd hosts of the Debian/Ubuntu or RHEL/CentOS/TencentOS families.
"""

from invoke import Collection

from swarmbook import dockercmd as D
from swarmbook import facts as F
from swarmbook import files, ops
from swarmbook.engine import Host
from swarmbook.errors import StepFailed
from swarmbook.taskdef import host_task, refuse


def _check_method(settings, method=None):
    method = settings.get("DOCKER_INSTALL_METHOD", method)
    if method not in D.METHODS:
        refuse(f"--method {method!r} is not one of {', '.join(D.METHODS)}")


@host_task(group="all", validate=_check_method, help={
    "method": "script (get.docker.com, the runbook's way) or distro (OS packages); "
              "default DOCKER_INSTALL_METHOD",
})
def install(h: Host, method=None):
    """Install and start Docker (no-op when present); add the SSH user to the docker group."""
    method = h.settings.get("DOCKER_INSTALL_METHOD", method)
    user = h.spec.user
    f = h.probe(F.OS_RELEASE, F.command_exists("dockerd"), F.unit_active("docker"),
                F.unit_enabled("docker"), F.user_groups(user))
    family = F.os_family(f["os"])
    installed_now = False
    if f["has:dockerd"]:
        h.ok("docker installed")
    elif method == "script":
        h.change("install docker (get.docker.com)", D.GET_DOCKER, timeout=1800)
        installed_now = True
    else:
        if family not in D.DISTRO_PACKAGES:
            h.fail("install docker", f"no distro packages known for {f['os'].get('ID', '?')}; use --method script")
        installed_now = ops.ensure_packages(h, family, D.DISTRO_PACKAGES[family], installed=set())
    ops.ensure_service(h, "docker", active=f["active:docker"] and not installed_now,
                       enabled=f["enabled:docker"] and not installed_now)
    if user != "root":
        ops.ensure_in_group(h, user, "docker", groups=f[f"groups:{user}"])
    if h.changed_any and not h.check:
        version = h.run("docker version --format '{{.Server.Version}}'", step="verify docker").stdout.strip()
        h.ok("docker answers", f"engine {version}")


def _wanted_mirrors(settings, mirrors=None) -> list[str]:
    wanted = list(settings["DOCKER_MIRRORS"]) if mirrors is None else [m.strip() for m in mirrors.split(",") if m.strip()]
    for m in wanted:
        if D.bad_mirror(m):
            refuse(D.bad_mirror(m))
    return wanted


@host_task(group="all", validate=_wanted_mirrors, help={
    "mirrors": "comma list of mirror URLs (default DOCKER_MIRRORS); an empty string removes them",
})
def mirrors(h: Host, mirrors=None):
    """Merge registry mirrors into /etc/docker/daemon.json; validate, restart only on change."""
    wanted = _wanted_mirrors(h.settings, mirrors)
    f = h.probe(F.command_exists("dockerd"), F.file_state(D.DAEMON_JSON, "daemon"))
    if not f["has:dockerd"]:
        h.fail("mirrors", "docker is not installed (run docker.install first)")
    current = f["daemon"]["content"] if f["daemon"] else ""
    try:
        if not wanted and '"registry-mirrors"' not in current:
            h.ok("registry mirrors", "none configured")
            return
        new = files.merged_json(current, {"registry-mirrors": wanted})
    except files.BadJSON as exc:
        raise StepFailed(f"{D.DAEMON_JSON} is {exc}; fix it by hand, nothing was changed") from None
    if new == current:
        h.ok("registry mirrors", ", ".join(wanted))
        return
    h.change("registry mirrors", D.replace_daemon_json(), stdin=new,
             reason=f"{', '.join(wanted) or 'removed'}; docker restarted")
    if not h.check:
        got = h.run("docker info --format '{{json .RegistryConfig.Mirrors}}'", step="verify mirrors").stdout
        missing = [m for m in wanted if m.rstrip("/") not in got]
        if missing:
            h.fail("verify mirrors", f"docker info does not list {', '.join(missing)}")


ns = Collection("docker", install, mirrors)
