"""Pure builders for gitlab-runner: its package repository per OS family (in one place), a git
new enough for shallow fetches, non-interactive registration with the token on stdin, and
config.toml readers.

Registration reads the token from stdin into CI_SERVER_TOKEN (runner authentication token,
``glrt-``, GitLab >= 15.10) or REGISTRATION_TOKEN (legacy registration token), the variables
``gitlab-runner register`` takes for ``--token`` / ``--registration-token``: it never appears in
argv, ``ps`` or the run's output.
"""

from __future__ import annotations

import re

from .facts import Fact
from .shell import join, quote

CONFIG = "/etc/gitlab-runner/config.toml"
USER = "gitlab-runner"
KEYRING = "/usr/share/keyrings/runner_gitlab-runner-archive-keyring.gpg"
APT_SOURCE = "/etc/apt/sources.list.d/runner_gitlab-runner.list"
YUM_REPO = "/etc/yum.repos.d/runner_gitlab-runner.repo"
EXECUTORS = ("shell", "docker", "docker+machine", "docker-autoscaler", "ssh", "kubernetes",
             "virtualbox", "parallels", "custom", "instance")
MIN_GIT = (2, 0)


# --- package repository ---------------------------------------------------------------------

def apt_source(repo_url: str, os_id: str, codename: str) -> str:
    """The packages.gitlab.com apt line (script.deb.sh writes the same)."""
    return f"deb [signed-by={KEYRING}] {repo_url.rstrip('/')}/{os_id}/ {codename} main\n"


def yum_repo(repo_url: str, major: str) -> str:
    """The packages.gitlab.com yum repository (script.rpm.sh writes the same)."""
    url = repo_url.rstrip("/")
    return (f"[runner_gitlab-runner]\nname=runner_gitlab-runner\nbaseurl={url}/el/{major}/$basearch\n"
            f"repo_gpgcheck=1\ngpgcheck=1\nenabled=1\ngpgkey={url}/gpgkey\nsslverify=1\n"
            "sslcacert=/etc/pki/tls/certs/ca-bundle.crt\nmetadata_expire=300\n")


def repo_file(family: str, repo_url: str, os_release: dict[str, str]) -> tuple[str, str]:
    """(path, content) of the repository definition for this OS family."""
    if family == "debian":
        codename = os_release.get("VERSION_CODENAME", "")
        if not codename:
            raise ValueError("/etc/os-release has no VERSION_CODENAME")
        return APT_SOURCE, apt_source(repo_url, os_release.get("ID", "debian"), codename)
    if family == "rhel":
        return YUM_REPO, yum_repo(repo_url, os_release.get("VERSION_ID", "7").split(".")[0])
    raise ValueError(f"no gitlab-runner repository known for OS family {family!r}")


# Debian/Ubuntu: what fetching and dearmoring the repository key needs (minimal images lack them)
KEY_TOOLS = ("curl", "gnupg", "ca-certificates")


def parse_installed(text: str, rc: int = 0) -> set[str]:
    """Installed packages from ``dpkg-query -W -f '${db:Status-Abbrev} ${Package}\\n'``
    (rc 1 when some package is unknown: the known ones are still listed)."""
    return {parts[1] for parts in (line.split() for line in text.splitlines())
            if len(parts) == 2 and parts[0] == "ii"}


KEY_TOOLS_FACT = Fact("key_tools", join(["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\\n", *KEY_TOOLS]),
                      parse_installed)


def keyring_cmd(repo_url: str) -> str:
    """Debian: fetch the repository's signing key into the keyring apt's signed-by names."""
    url = repo_url.rstrip("/") + "/gpgkey"
    return (f"tmp=$(mktemp) && curl -fsSL {quote(url)} | gpg --batch --yes --dearmor -o \"$tmp\" && "
            f"install -m 0644 \"$tmp\" {quote(KEYRING)} && rm -f \"$tmp\"")


def install_cmd(family: str) -> str:
    """Install gitlab-runner from the repository just added (Debian refreshes the lists first)."""
    if family == "debian":
        return ("export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                + join(["apt-get", "install", "-y", "-q", "gitlab-runner"]))
    if family == "rhel":
        return join(["yum", "install", "-y", "gitlab-runner"])
    raise ValueError(f"unsupported OS family {family!r}")


# --- git ------------------------------------------------------------------------------------

def parse_git_version(text: str, rc: int = 0) -> tuple[int, ...] | None:
    """``git version 2.39.5`` -> (2, 39, 5); None when git is missing."""
    m = re.search(r"git version (\d+)\.(\d+)(?:\.(\d+))?", text)
    if rc != 0 or not m:
        return None
    return tuple(int(x) for x in m.groups() if x is not None)


GIT_VERSION_CMD = "git version"
GIT_VERSION = Fact("git", GIT_VERSION_CMD, parse_git_version)
KEYRING_FACT = Fact("keyring", join(["test", "-s", KEYRING]), lambda t, rc: rc == 0)  # the signing key is there
VERSION_CMD = "gitlab-runner --version | head -1"  # proves the installed runner starts


def git_fix_cmd(family: str, os_release: dict[str, str]) -> str:
    """Install or upgrade git to >= 2 ("fatal: git fetch-pack: expected shallow list").

    RHEL/CentOS 7 ships git 1.8: the runbook's fix is IUS (setup.ius.io, git2u; today the
    ius-release package and git236), replacing the distro's git. ius-release requires
    epel-release, so EPEL is installed first (what setup.ius.io did).
    """
    if family == "debian":
        return ("export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                + join(["apt-get", "install", "-y", "-q", "git"]))
    if family == "rhel":
        major = os_release.get("VERSION_ID", "7").split(".")[0]
        if major == "7":
            return " && ".join([
                join(["yum", "install", "-y", "epel-release"]),
                join(["yum", "install", "-y", f"https://repo.ius.io/ius-release-el{major}.rpm"]),
                "{ " + join(["yum", "remove", "-y", "git"]) + " || true; }",
                join(["yum", "install", "-y", "git236"])])
        return join(["yum", "install", "-y", "git"])
    raise ValueError(f"unsupported OS family {family!r}")


def git_ok(version: tuple[int, ...] | None) -> bool:
    return version is not None and version[:2] >= MIN_GIT


# --- roles ----------------------------------------------------------------------------------
# The runbook's two runners: a builder (build machine, tag builder) that builds and pushes, and a
# deploy runner on a swarm manager (tag test for the test environment, tags for production).
ROLES = ("builder", "deploy")
ROLE_GROUP = {"builder": "RUNNERS", "deploy": "DEPLOY_RUNNERS"}
ROLE_TOKEN = {"builder": "RUNNER_TOKEN", "deploy": "DEPLOY_RUNNER_TOKEN"}
ROLE_TAGS = {"builder": "RUNNER_TAGS", "deploy": "DEPLOY_RUNNER_TAGS"}


def host_roles(host: str, groups: dict[str, set[str]], wanted: str | None = None) -> tuple[str, ...]:
    """Runner roles of ``host``: one per group that lists it (``groups``: RUNNERS / DEPLOY_RUNNERS
    -> hosts); a host in neither (named with fab -H) has the ``wanted`` role, else builder.
    With ``wanted``, only that role, and none for a host that hosts.env gives only the other."""
    have = tuple(r for r in ROLES if host in groups.get(ROLE_GROUP[r], set()))
    if wanted is None:
        return have or ("builder",)
    return (wanted,) if wanted in have or not have else ()


def default_name(host: str, role: str) -> str:
    """A runner's default name: the host's address for a builder, ADDRESS-deploy for a deploy runner
    (one host may carry both, and the name is what config.toml is searched for)."""
    return host if role == "builder" else f"{host}-{role}"


# --- registration ---------------------------------------------------------------------------

def token_kind(token: str) -> str:
    """'auth' for a runner authentication token (glrt-), else 'registration' (legacy)."""
    return "auth" if token.startswith("glrt-") else "registration"


def register_cmd(*, url: str, name: str, executor: str, kind: str, clone_url: str = "",
                 tags: tuple[str, ...] = (), docker_image: str = "") -> str:
    """``gitlab-runner register --non-interactive`` with the token read from stdin into env.

    With an authentication token GitLab owns tags and the other runner settings (the runner
    refuses --tag-list then), so tags are passed only with a legacy registration token.
    """
    var = "CI_SERVER_TOKEN" if kind == "auth" else "REGISTRATION_TOKEN"
    argv = ["gitlab-runner", "register", "--non-interactive", "--url", url, "--name", name,
            "--executor", executor]
    if clone_url:
        argv += ["--clone-url", clone_url]
    if kind == "registration" and tags:
        argv += ["--tag-list", ",".join(tags)]
    if executor.startswith("docker") and docker_image:
        argv += ["--docker-image", docker_image]
    return f"IFS= read -r {var} && export {var} && " + join(argv)


def runner_names(toml: str) -> list[str]:
    """``name = "..."`` of every [[runners]] section in config.toml."""
    names, in_runner = [], False
    for line in toml.splitlines():
        s = line.strip()
        if s.startswith("[["):
            in_runner = s == "[[runners]]"
        elif s.startswith("[") and not s.startswith("[runners."):
            in_runner = False
        m = re.match(r'name\s*=\s*"((?:[^"\\]|\\.)*)"', s)
        if in_runner and m:
            names.append(m.group(1).replace('\\"', '"'))
    return names


def bad_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@ -]{0,127}", name):
        return f"runner name {name!r}: use letters, digits, space, . _ - @ (at most 128)"
    return ""
