"""gitlab-runner on the RUNNERS hosts: install it (and a git >= 2), register it, set
`concurrent`, and let it use Docker and the registry.

A builder runner and a deploy runner differ by tags (RUNNER_TAGS: e.g. builder vs test/tags).
Assumes Debian/Ubuntu or RHEL/CentOS hosts; runner.grant assumes Docker (docker.install).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.shell import join
from swarmbook.taskdef import host_task, refuse, require

if TYPE_CHECKING:
    from swarmbook.engine import Host

F = lazy("swarmbook.facts")
files = lazy("swarmbook.files")
ops = lazy("swarmbook.ops")
R = lazy("swarmbook.registrycmd")
N = lazy("swarmbook.runnercmd")


def _os(h: Host, f: dict) -> str:
    family = F.os_family(f["os"])
    if family not in ("debian", "rhel"):
        h.fail("os", f"{f['os'].get('PRETTY_NAME', 'this OS')} is neither Debian/Ubuntu nor RHEL/CentOS")
    return family


@host_task(group="runners", help={})
def install(h: Host):
    """Install gitlab-runner from its package repository, with a git new enough for shallow fetches."""
    s = h.settings
    f = h.probe(F.OS_RELEASE, N.GIT_VERSION, F.command_exists("gitlab-runner"),
                F.file_state(N.APT_SOURCE, "apt"), F.file_state(N.YUM_REPO, "yum"),
                F.Fact("keyring", join(["test", "-s", N.KEYRING]), lambda t, rc: rc == 0))
    family = _os(h, f)
    git = f["git"]
    if N.git_ok(git):
        h.ok("git", ".".join(map(str, git)))
    else:
        why = "missing" if git is None else f"{'.'.join(map(str, git))} is too old (shallow fetches fail)"
        h.change("git >= 2", N.git_fix_cmd(family, f["os"]), reason=why, timeout=1800)
        if not h.check:
            now = N.parse_git_version(h.run("git version", step="git version").stdout)
            if not N.git_ok(now):
                h.fail("git >= 2", f"still {now} after the upgrade")
            h.ok("git", ".".join(map(str, now)))
    path, content = N.repo_file(family, s["RUNNER_REPO_URL"], f["os"])
    if family == "debian":
        if f["keyring"]:
            h.ok(f"signing key {N.KEYRING}")
        else:
            h.change(f"signing key {N.KEYRING}", N.keyring_cmd(s["RUNNER_REPO_URL"]), reason="absent")
    repo_changed = ops.put_file(h, path, content, state=f["apt" if family == "debian" else "yum"],
                                step=f"repository {path}")
    if f["has:gitlab-runner"] and not repo_changed:
        h.ok("gitlab-runner installed")
    elif f["has:gitlab-runner"]:
        h.ok("gitlab-runner installed", "repository changed: upgrade with apt/yum when you choose to")
    else:
        h.change("install gitlab-runner", N.install_cmd(family), timeout=1800)
    if not h.check and h.changed_any:
        version = h.run("gitlab-runner --version | head -1", step="gitlab-runner --version").stdout.strip()
        h.ok("gitlab-runner answers", version)


def _register_args(settings, name=None, url=None, clone_url=None, executor=None, tags=None, docker_image=None):
    executor = settings.get("RUNNER_EXECUTOR", executor)
    if executor not in N.EXECUTORS:
        refuse(f"--executor {executor!r} is not one of {', '.join(N.EXECUTORS)}")
    token = settings["RUNNER_TOKEN"]
    if not token:
        refuse(f"RUNNER_TOKEN is empty (set it in the environment or {settings.source})")
    gitlab = settings.group("gitlab")
    url = settings.get("RUNNER_URL", url) or (f"http://{gitlab[0].host}/" if gitlab else "")
    if not url.startswith(("http://", "https://")):
        refuse("no GitLab URL: set RUNNER_URL or --url (e.g. http://gitlab.example.com/)")
    tag_list = tuple(settings["RUNNER_TAGS"]) if tags is None else tuple(t.strip() for t in tags.split(",") if t.strip())
    kind = N.token_kind(token.reveal())
    if name and N.bad_name(name):
        refuse(N.bad_name(name))
    return dict(url=url, executor=executor, kind=kind, tags=tag_list,
                clone_url=settings.get("RUNNER_CLONE_URL", clone_url),
                docker_image=settings.get("RUNNER_DOCKER_IMAGE", docker_image))


@host_task(group="runners", validate=_register_args, help={
    "name": "runner name/description, the key of idempotence in config.toml (default: the host's address)",
    "url": "GitLab URL (default RUNNER_URL, else http://<first GITLAB host>/)",
    "clone-url": "GitLab's internal address for fetches (default RUNNER_CLONE_URL)",
    "executor": "shell, docker, ... (default RUNNER_EXECUTOR)",
    "tags": "comma list of tags, legacy registration tokens only (default RUNNER_TAGS)",
    "docker-image": "default image of the docker executor (default RUNNER_DOCKER_IMAGE)",
})
def register(h: Host, name=None, url=None, clone_url=None, executor=None, tags=None, docker_image=None):
    """Register the runner non-interactively (token from RUNNER_TOKEN on stdin); skip a known name."""
    a = _register_args(h.settings, name, url, clone_url, executor, tags, docker_image)
    name = name or h.name
    f = h.probe(F.command_exists("gitlab-runner"), F.file_state(N.CONFIG, "config"))
    if not f["has:gitlab-runner"]:
        h.fail("register", "gitlab-runner is not installed (run runner.install first)")
    names = N.runner_names((f["config"] or {}).get("content", ""))
    if name in names:
        h.ok(f"runner {name} registered", f"in {N.CONFIG}")
        return
    if a["kind"] == "auth" and a["tags"] and tags is not None:
        h.note("tags are kept in GitLab for authentication tokens (set them where the runner was created)",
               level="warning")
    h.change(f"register runner {name}", N.register_cmd(name=name, **a), stdin=h.settings["RUNNER_TOKEN"].reveal() + "\n",
             reason=f"{a['executor']} executor, {'authentication token' if a['kind'] == 'auth' else 'registration token'}"
                    + (f", tags {','.join(a['tags'])}" if a["kind"] == "registration" and a["tags"] else ""))
    if not h.check:
        cfg = h.probe(F.file_state(N.CONFIG, "config"))["config"]
        if name not in N.runner_names((cfg or {}).get("content", "")):
            h.fail("verify registration", f"{name} is not in {N.CONFIG} after register")


def _concurrency(settings, concurrent=None):
    n = settings.get("RUNNER_CONCURRENT", concurrent)
    if not str(n).isdigit() or int(n) < 1:
        refuse(f"--concurrent {n!r} must be a whole number >= 1")


@host_task(group="runners", validate=_concurrency, help={
    "concurrent": "jobs this host runs at once (default RUNNER_CONCURRENT, 5)",
})
def concurrency(h: Host, concurrent=None):
    """Set `concurrent = N` in /etc/gitlab-runner/config.toml (the runner reloads it itself)."""
    n = int(h.settings.get("RUNNER_CONCURRENT", concurrent))
    cfg = h.probe(F.file_state(N.CONFIG, "config"))["config"]
    if cfg is None:
        h.fail("concurrent", f"{N.CONFIG} does not exist (run runner.install first)")
    new = files.with_key_value(cfg["content"], "concurrent", str(n), sep=" = ")
    ops.put_file(h, N.CONFIG, new, mode=cfg["mode"].rjust(4, "0"), owner=cfg["owner"], group=cfg["group"],
                 state=cfg, step=f"concurrent = {n}", secret=True)  # config.toml holds runner tokens


def _grant(settings, **_):
    require(settings, "REGISTRY", "REGISTRY_USER", "REGISTRY_PASSWORD")


@host_task(group="runners", validate=_grant, help={})
def grant(h: Host):
    """Let gitlab-runner use Docker (docker group) and log it into REGISTRY (password on stdin)."""
    s = h.settings
    registry, user, password = s["REGISTRY"], s["REGISTRY_USER"], s["REGISTRY_PASSWORD"]
    f = h.probe(F.user_groups(N.USER), R.docker_config_fact(N.USER), F.command_exists("docker"))
    if f[f"groups:{N.USER}"] is None:
        h.fail("grant", f"no user {N.USER} (run runner.install first)")
    if not f["has:docker"]:
        h.fail("grant", "docker is not installed (run docker.install first)")
    ops.ensure_in_group(h, N.USER, "docker", groups=f[f"groups:{N.USER}"])
    if R.login_current(f[f"dockercfg:{N.USER}"], registry, user, password.reveal()):
        h.ok(f"login {registry} as {N.USER}")
    else:
        h.change(f"login {registry} as {N.USER}", R.login_cmd(registry, user, as_user=N.USER), stdin=password,
                 reason=f"user {user}")


ns = Collection("runner", install, register, concurrency, grant)
