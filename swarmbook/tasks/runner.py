"""gitlab-runner on the runner hosts: install it (and a git >= 2), register it, set `concurrent`,
and let it use Docker and the registry.

Two roles, as in the runbook and templates/.gitlab-ci.yml: builder runners (RUNNERS; RUNNER_TOKEN,
RUNNER_TAGS, default builder) build and push images; deploy runners (DEPLOY_RUNNERS, usually a
manager; DEPLOY_RUNNER_TOKEN, DEPLOY_RUNNER_TAGS, default test; tags for production) deploy stacks.
Every task acts on both groups; --role builder|deploy limits it to one. A host named with
`fab -H` that neither group lists is a builder (or the --role given). Assumes Debian/Ubuntu or
RHEL/CentOS hosts; runner.grant assumes Docker (docker.install).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import host_task, refuse, require

if TYPE_CHECKING:
    from swarmbook.engine import Host

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import facts, files, ops, registrycmd, runnercmd
else:
    facts = lazy("swarmbook.facts")
    files = lazy("swarmbook.files")
    ops = lazy("swarmbook.ops")
    registrycmd = lazy("swarmbook.registrycmd")
    runnercmd = lazy("swarmbook.runnercmd")

ROLE_HELP = ("builder (RUNNERS hosts) or deploy (DEPLOY_RUNNERS hosts) only (default: both groups; "
             "a fab -H host in neither is a builder)")


def _check_role(role) -> None:
    if role is not None and role not in runnercmd.ROLES:
        refuse(f"--role {role!r} is not one of {', '.join(runnercmd.ROLES)}")


def _roles(h: Host, role=None) -> tuple[str, ...]:
    """This host's runner roles (see runnercmd.host_roles); reports a skip when it has none."""
    s = h.settings
    groups = {g: {x.host for x in s.group(g)} for g in runnercmd.ROLE_GROUP.values()}
    roles = runnercmd.host_roles(h.name, groups, role)
    if not roles:
        other = next(r for r in runnercmd.ROLES if r != role)
        h.skip(f"{role} runner", f"{s.source} lists this host as a {other} runner only ({runnercmd.ROLE_GROUP[other]})")
    return roles


def _os(h: Host, f: dict) -> str:
    family = facts.os_family(f["os"])
    if family not in ("debian", "rhel"):
        h.fail("os", f"{f['os'].get('PRETTY_NAME', 'this OS')} is neither Debian/Ubuntu nor RHEL/CentOS")
    return family


def _validate_role(settings, role=None, **_):
    _check_role(role)


@host_task(group="runner_hosts", validate=_validate_role, help={"role": ROLE_HELP})
def install(h: Host, role=None):
    """Install gitlab-runner from its package repository, with a git new enough for shallow fetches."""
    if not _roles(h, role):
        return
    s = h.settings
    f = h.probe(facts.OS_RELEASE, runnercmd.GIT_VERSION, facts.command_exists("gitlab-runner"), runnercmd.KEY_TOOLS_FACT,
                facts.file_state(runnercmd.APT_SOURCE, "apt"), facts.file_state(runnercmd.YUM_REPO, "yum"),
                runnercmd.KEYRING_FACT)
    family = _os(h, f)
    git = f["git"]
    if runnercmd.git_ok(git):
        h.ok("git", ".".join(map(str, git)))
    else:
        why = "missing" if git is None else f"{'.'.join(map(str, git))} is too old (shallow fetches fail)"
        h.change("git >= 2", runnercmd.git_fix_cmd(family, f["os"]), reason=why, timeout=1800)
        if not h.check:
            now = runnercmd.parse_git_version(h.run(runnercmd.GIT_VERSION_CMD, step="git version").stdout)
            if not runnercmd.git_ok(now):
                h.fail("git >= 2", f"still {'.'.join(map(str, now)) if now else 'missing'} after the upgrade")
            h.ok("git", ".".join(map(str, now)))
    path, content = runnercmd.repo_file(family, s["RUNNER_REPO_URL"], f["os"])
    if family == "debian":
        if f["keyring"]:
            h.ok(f"signing key {runnercmd.KEYRING}")
        else:
            ops.ensure_packages(h, family, list(runnercmd.KEY_TOOLS), installed=f["key_tools"])  # to fetch the key
            h.change(f"signing key {runnercmd.KEYRING}", runnercmd.keyring_cmd(s["RUNNER_REPO_URL"]), reason="absent")
    repo_changed = ops.put_file(h, path, content, state=f["apt" if family == "debian" else "yum"],
                                step=f"repository {path}")
    if f["has:gitlab-runner"] and not repo_changed:
        h.ok("gitlab-runner installed")
    elif f["has:gitlab-runner"]:
        h.ok("gitlab-runner installed", "repository changed: upgrade with apt/yum when you choose to")
    else:
        h.change("install gitlab-runner", runnercmd.install_cmd(family), timeout=1800)
    if not h.check and h.changed_any:
        version = h.run(runnercmd.VERSION_CMD, step="gitlab-runner --version").stdout.strip()
        h.ok("gitlab-runner answers", version)


def _tags(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _register_args(settings, name=None, url=None, clone_url=None, executor=None, tags=None, docker_image=None,
                   role=None):
    """What every runner of this run shares; refuses bad input and missing tokens before any host."""
    _check_role(role)
    executor = settings.get("RUNNER_EXECUTOR", executor)
    if executor not in runnercmd.EXECUTORS:
        refuse(f"--executor {executor!r} is not one of {', '.join(runnercmd.EXECUTORS)}")
    roles = [role] if role else [r for r in runnercmd.ROLES if settings.group(runnercmd.ROLE_GROUP[r])] or ["builder"]
    for r in roles:
        if not settings[runnercmd.ROLE_TOKEN[r]]:
            refuse(f"{runnercmd.ROLE_TOKEN[r]} is empty (set it in the environment or {settings.source})")
    builder, deploy = (settings[runnercmd.ROLE_TOKEN[r]].reveal() for r in runnercmd.ROLES)
    if builder and builder == deploy and runnercmd.token_kind(builder) == "auth":
        refuse("RUNNER_TOKEN and DEPLOY_RUNNER_TOKEN are the same glrt- token, which belongs to one runner: "
               "create the deploy runner in GitLab (tags test, or tags) and set DEPLOY_RUNNER_TOKEN to its token")
    gitlab = settings.group("gitlab")
    url = settings.get("RUNNER_URL", url) or (f"http://{gitlab[0].host}/" if gitlab else "")
    if not url.startswith(("http://", "https://")):
        refuse("no GitLab URL: set RUNNER_URL or --url (e.g. http://gitlab.example.com/)")
    if name and runnercmd.bad_name(name):
        refuse(runnercmd.bad_name(name))
    return dict(url=url, executor=executor, clone_url=settings.get("RUNNER_CLONE_URL", clone_url),
                docker_image=settings.get("RUNNER_DOCKER_IMAGE", docker_image))


@host_task(group="runner_hosts", validate=_register_args, help={
    "name": "runner name/description, the key of idempotence in config.toml (default: the host's address; "
            "ADDRESS-deploy for a deploy runner)",
    "url": "GitLab URL (default RUNNER_URL, else http://<first GITLAB host>/)",
    "clone-url": "GitLab's internal address for fetches (default RUNNER_CLONE_URL)",
    "executor": "shell, docker, ... (default RUNNER_EXECUTOR)",
    "tags": "comma list of tags, legacy registration tokens only (default RUNNER_TAGS / DEPLOY_RUNNER_TAGS)",
    "docker-image": "default image of the docker executor (default RUNNER_DOCKER_IMAGE)",
    "role": ROLE_HELP,
})
def register(h: Host, name=None, url=None, clone_url=None, executor=None, tags=None, docker_image=None, role=None):
    """Register the builder and/or deploy runner non-interactively (token on stdin); skip a known name."""
    shared = _register_args(h.settings, name, url, clone_url, executor, tags, docker_image, role)
    roles = _roles(h, role)
    if not roles:
        return
    if len(roles) > 1 and (name or tags is not None):
        h.fail("register", "this host is in RUNNERS and DEPLOY_RUNNERS, and --name/--tags describe one runner: "
                           "add --role builder or --role deploy")
    f = h.probe(facts.command_exists("gitlab-runner"), facts.file_state(runnercmd.CONFIG, "config"))
    if not f["has:gitlab-runner"]:
        h.needs("register", "gitlab-runner is not installed (run runner.install first)")
    names = runnercmd.runner_names((f["config"] or {}).get("content", ""))
    for r in roles:
        _register_one(h, r, name or runnercmd.default_name(h.name, r), None if tags is None else _tags(tags), names, shared)


def _register_one(h: Host, role: str, name: str, tags, names: list[str], shared: dict) -> None:
    s = h.settings
    token = s[runnercmd.ROLE_TOKEN[role]]
    if not token:
        h.fail(f"register {role} runner", f"{runnercmd.ROLE_TOKEN[role]} is empty (set it in the environment or {s.source})")
    if name in names:
        h.ok(f"{role} runner {name} registered", f"in {runnercmd.CONFIG}")
        return
    kind = runnercmd.token_kind(token.reveal())
    tag_list = tuple(s[runnercmd.ROLE_TAGS[role]]) if tags is None else tags
    if kind == "auth" and tags:
        h.note("tags are kept in GitLab for authentication tokens (set them where the runner was created)",
               level="warning")
    h.change(f"register {role} runner {name}", runnercmd.register_cmd(name=name, kind=kind, tags=tag_list, **shared),
             stdin=token.reveal() + "\n",
             reason=f"{shared['executor']} executor, {'authentication token' if kind == 'auth' else 'registration token'}"
                    + (f", tags {','.join(tag_list)}" if kind == "registration" and tag_list else ""))
    if not h.check:
        cfg = h.probe(facts.file_state(runnercmd.CONFIG, "config"))["config"]
        if name not in runnercmd.runner_names((cfg or {}).get("content", "")):
            h.fail("verify registration", f"{name} is not in {runnercmd.CONFIG} after register")


def _concurrency(settings, concurrent=None, role=None):
    _check_role(role)
    n = settings.get("RUNNER_CONCURRENT", concurrent)
    if not str(n).isdigit() or int(n) < 1:
        refuse(f"--concurrent {n!r} must be a whole number >= 1")


@host_task(group="runner_hosts", validate=_concurrency, help={
    "concurrent": "jobs this host runs at once (default RUNNER_CONCURRENT, 5)",
    "role": ROLE_HELP,
})
def concurrency(h: Host, concurrent=None, role=None):
    """Set `concurrent = N` in /etc/gitlab-runner/config.toml (the runner reloads it itself)."""
    if not _roles(h, role):
        return
    n = int(h.settings.get("RUNNER_CONCURRENT", concurrent))
    cfg = h.probe(facts.file_state(runnercmd.CONFIG, "config"))["config"]
    if cfg is None:
        h.needs("concurrent", f"{runnercmd.CONFIG} does not exist (run runner.install first)")
    new = files.with_key_value(cfg["content"], "concurrent", str(n), sep=" = ")
    ops.put_file(h, runnercmd.CONFIG, new, mode=cfg["mode"].rjust(4, "0"), owner=cfg["owner"], group=cfg["group"],
                 state=cfg, step=f"concurrent = {n}", secret=True)  # config.toml holds runner tokens


def _grant(settings, role=None):
    _check_role(role)
    require(settings, "REGISTRY", "REGISTRY_USER", "REGISTRY_PASSWORD")


@host_task(group="runner_hosts", validate=_grant, help={"role": ROLE_HELP})
def grant(h: Host, role=None):
    """Let gitlab-runner use Docker (docker group) and log it into REGISTRY (password on stdin)."""
    if not _roles(h, role):
        return
    s = h.settings
    registry, user, password = s["REGISTRY"], s["REGISTRY_USER"], s["REGISTRY_PASSWORD"]
    f = h.probe(facts.user_groups(runnercmd.USER), registrycmd.docker_config_fact(runnercmd.USER), facts.command_exists("docker"))
    if f[f"groups:{runnercmd.USER}"] is None:
        h.needs("grant", f"no user {runnercmd.USER} (run runner.install first)")
    if not f["has:docker"]:
        h.needs("grant", "docker is not installed (run docker.install first)")
    ops.ensure_in_group(h, runnercmd.USER, "docker", groups=f[f"groups:{runnercmd.USER}"])
    if registrycmd.login_current(f[f"dockercfg:{runnercmd.USER}"], registry, user, password.reveal()):
        h.ok(f"login {registry} as {runnercmd.USER}")
    else:
        h.change(f"login {registry} as {runnercmd.USER}", registrycmd.login_cmd(registry, user, as_user=runnercmd.USER), stdin=password,
                 reason=f"user {user}")


ns = Collection("runner", install, register, concurrency, grant)
