"""hosts.env: host groups and settings, parsed once into typed, validated :class:`Settings`.

Precedence: task argument > hosts.env (secrets: the environment beats the file) > default.
Every key is declared in :data:`KEYS`; hosts.env.example documents the same keys (a unit
test keeps the two in step). Nothing here opens a connection: all errors are raised before
any host is touched.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import validate as V
from .errors import ConfigError
from .shell import Secret

GROUPS = ("MANAGERS", "WORKERS", "BUILD", "GITLAB", "RUNNERS", "DEPLOY_RUNNERS", "KONG")
# Group names a task may ask for, beyond the ones above (all lower-case in code).
DERIVED_GROUPS = {"nodes": ("MANAGERS", "WORKERS"), "runner_hosts": ("RUNNERS", "DEPLOY_RUNNERS"), "all": GROUPS}


@dataclass(frozen=True)
class Key:
    default: Any
    kind: str  # hosts | str | int | port | list | secret | path | choice | cidr | user | registry
    #            | image | tag | swarmname | project | port? (a port or empty) | abspath | version
    #            | hostname | ip | url
    doc: str
    choices: tuple[str, ...] = ()
    from_env: bool = False  # the environment beats the file (always so for secrets)


KEYS: dict[str, Key] = {
    **{g: Key((), "hosts", f"{g.lower()} group: comma list of [user@]host[:port]") for g in GROUPS},
    "SSH_USER": Key("root", "user", "SSH login user when a host entry names none"),
    "SSH_PORT": Key(22, "port", "SSH port when a host entry names none"),
    "SSH_KEY": Key("", "path", "private key file for SSH (empty: agent / ~/.ssh defaults)"),
    "SSH_CONNECT_TIMEOUT": Key(5, "int", "seconds to wait for a host to answer SSH"),
    "SSH_KNOWN_HOSTS": Key("~/.ssh/known_hosts", "path", "known_hosts file new host keys are recorded in "
                           "(also read: ~/.ssh/known_hosts, /etc/ssh/ssh_known_hosts; environment beats file)",
                           from_env=True),
    "LOCK_WAIT": Key(0, "int", "seconds a run waits for another operator's cluster lock (0: fail at once)"),
    "SSHD_PORT": Key("2222", "port?", "port sshd moves to on GITLAB hosts so GitLab can take 22 "
                                     "(empty: bootstrap-all leaves sshd alone)"),
    "DOCKER_INSTALL_METHOD": Key(
        "script", "choice", "script (get.docker.com, the runbook's way) or distro packages",
        ("script", "distro"),
    ),
    "DOCKER_VERSION": Key("", "version", "engine version docker.install installs, a prefix such as 28.5 "
                                     "(empty: what the source offers first)"),
    "DOCKER_TLS_DIR": Key("~/.swarmbook/tls", "path", "docker.tcp's CA, server and client certificates (this machine, 0600)"),
    "SWARM_KEYS_DIR": Key("~/.swarmbook/unlock-keys", "path", "swarm.autolock's unlock keys, one 0600 file per cluster "
                                                              "(this machine)"),
    "DOCKER_MIRRORS": Key((), "list", "registry mirrors for /etc/docker/daemon.json"),
    "REGISTRY": Key("", "registry", "image registry host[:port] that every node logs into"),
    "REGISTRY_USER": Key("", "str", "registry user name"),
    "REGISTRY_PASSWORD": Key(Secret(""), "secret", "registry password (environment beats file)"),
    "REGISTRY_CA": Key("", "path", "CA certificate of a private registry, installed on nodes"),
    "SWARM_ADVERTISE": Key("auto", "str", "auto (the SSH address, or the route source toward the leader) or an interface name"),
    "NODE_LABELS": Key((), "list", "node labels as host:key=value, comma separated (swarm.init applies them)"),
    "PROJECT": Key("demo", "project", "image name under REGISTRY and default stack name"),
    "IMAGE_TAG": Key("latest", "tag", "image tag built, pushed and deployed"),
    "STACK_REPLICAS": Key(1, "int", "replicas of a stack's app service (publish mode ingress)"),
    "STACK_PUBLISH_MODE": Key("ingress", "choice", "ingress (routing mesh, needs IPVS) or host "
                              "(one task per node on its own port; global services)", ("ingress", "host")),
    "STACKS_PATH": Key("", "path", "folder of stack templates NAME/deploy.yml, NAME/app.env, NAME/app/ "
                                   "(default: the stacks/ swarmbook ships: a checkout's, or the installed package's)"),
    "STACK_DIR": Key("/opt/swarmbook/stacks", "abspath", "where rendered stack files live on the manager"),
    "STACK_IPVS_SYSCTLS": Key("auto", "choice", "auto: give every service the runbook's IPVS sysctls when the "
                              "manager's kernel has IPVS; off: never", ("auto", "off")),
    "NETWORK_NAME": Key("default-network", "swarmname", "the shared overlay network"),
    "NETWORK_SUBNET": Key("10.1.0.0/16", "cidr", "subnet of the shared overlay network"),
    # --- platform services (issue 5) ---
    "GITLAB_IMAGE": Key("gitlab/gitlab-ce:latest", "image", "GitLab CE image (gitlab.up)"),
    "GITLAB_HOSTNAME": Key("", "hostname", "GitLab's --hostname (empty: the GITLAB host's address) (gitlab.up)"),
    "GITLAB_HOME": Key("/srv/gitlab", "abspath", "host folder of GitLab's config/, logs/ and data/ (gitlab.*)"),
    "GITLAB_PORTS": Key(("443:443", "80:80", "22:22"), "list", "published host:container ports (gitlab.up)"),
    "GITLAB_TIMEOUT": Key(900, "int", "seconds gitlab.up waits for /-/health"),
    "GITLAB_SMTP_ADDRESS": Key("", "hostname", "SMTP server (gitlab.smtp)"),
    "GITLAB_SMTP_PORT": Key(465, "port", "SMTP port (gitlab.smtp)"),
    "GITLAB_SMTP_USER": Key("", "str", "SMTP user name (gitlab.smtp)"),
    "GITLAB_SMTP_PASSWORD": Key(Secret(""), "secret", "SMTP password (gitlab.smtp; environment beats file)"),
    "GITLAB_SMTP_DOMAIN": Key("", "hostname", "SMTP HELO domain (gitlab.smtp)"),
    "GITLAB_SMTP_AUTH": Key("login", "choice", "SMTP authentication (gitlab.smtp)", ("login", "plain", "cram_md5")),
    "GITLAB_SMTP_TLS": Key("true", "choice", "implicit TLS, e.g. port 465 (gitlab.smtp)", ("true", "false")),
    "GITLAB_SMTP_STARTTLS": Key("true", "choice", "STARTTLS when offered (gitlab.smtp)", ("true", "false")),
    "GITLAB_EMAIL_FROM": Key("", "str", "sender address of GitLab's mail (gitlab.smtp)"),
    "RUNNER_REPO_URL": Key("https://packages.gitlab.com/runner/gitlab-runner", "url",
                           "gitlab-runner package repository (runner.install)"),
    "RUNNER_URL": Key("", "url", "GitLab URL runners register with (empty: http://<first GITLAB host>/) (runner.register)"),
    "RUNNER_CLONE_URL": Key("", "url", "--clone-url: GitLab's internal address for git fetches (runner.register)"),
    "RUNNER_TOKEN": Key(Secret(""), "secret", "builder runners (RUNNERS): glrt- authentication token or legacy "
                                              "registration token (runner.register)"),
    "RUNNER_EXECUTOR": Key("shell", "str", "executor: shell, docker, ... (runner.register)"),
    "RUNNER_TAGS": Key(("builder",), "list", "builder runners' tags (legacy registration token only) (runner.register)"),
    "DEPLOY_RUNNER_TOKEN": Key(Secret(""), "secret", "deploy runners (DEPLOY_RUNNERS): glrt- authentication token "
                                                     "or legacy registration token (runner.register)"),
    "DEPLOY_RUNNER_TAGS": Key(("test",), "list", "deploy runners' tags, test or tags (legacy registration token "
                                                 "only) (runner.register)"),
    "RUNNER_DOCKER_IMAGE": Key("docker:latest", "image", "default image for the docker executor (runner.register)"),
    "RUNNER_CONCURRENT": Key(5, "int", "concurrent jobs per runner host (runner.concurrency)"),
    "PORTAINER_IMAGE": Key("portainer/portainer", "image", "Portainer image (portainer.up)"),
    "PORTAINER_PORT": Key(9000, "port", "Portainer's published port (portainer.up)"),
    "PORTAINER_NODE": Key("", "hostname", "manager that holds portainer_data (empty: the first manager) (portainer.*)"),
    "PORTAINER_HELPER_IMAGE": Key("nginx:latest", "image", "image with sh, tar, find and sha256sum that reads and "
                                                          "writes portainer_data (portainer.backup/restore)"),
    "KONG_IMAGE": Key("kong:latest", "image", "Kong image (kong.bootstrap)"),
    "KONG_DB_IMAGE": Key("postgres:9.6", "image", "Kong's Postgres image (kong.bootstrap)"),
    "KONG_DASHBOARD_IMAGE": Key("pgbi/kong-dashboard", "image", "kong-dashboard image (kong.bootstrap)"),
    "KONG_PG_PASSWORD": Key(Secret(""), "secret", "Kong's Postgres password (kong.bootstrap)"),
    "KONG_DASHBOARD_USERS": Key(Secret(""), "secret", "dashboard basic auth, 'user=password user2=password2' (kong.bootstrap)"),
    "KONG_ADMIN_BIND": Key("127.0.0.1", "ip", "host address the admin API 8001 is published on (kong.*)"),
    "KONG_DASHBOARD_PORT": Key(8080, "port", "dashboard's published port (kong.bootstrap)"),
    "MYSQL_IMAGE": Key("mysql:5.7", "image", "MySQL image (mysql.up)"),
    "MYSQL_ROOT_PASSWORD": Key(Secret(""), "secret", "MySQL root password (mysql.up)"),
    "MYSQL_DATA": Key("/srv/mysql", "abspath", "host folder of MySQL's data (mysql.up)"),
    "MYSQL_PORT": Key(3306, "port", "published MySQL port (mysql.up)"),
    "CRON_DIR": Key("/opt/swarmbook/cron", "abspath", "where cron.install keeps NAME/run.sh, .env and logs"),
    "CRON_ENV_TARGET": Key("/opt/www/.env", "abspath", "where the app's .env is mounted in the container (cron.install)"),
    "TLINUX_BASEURL": Key("https://mirrors.tencent.com/tlinux/2.4/tlinux/x86_64/", "url",
                          "TLinux yum repository (kernel.tlinux)"),
    "TLINUX_PACKAGES": Key(("kernel-devel-4.14.105-19.0012.tl2.x86_64", "kernel-4.14.105-19.0013.tl2.x86_64",
                            "kernel-headers-4.14.105-19.0013.tl2.x86_64"), "list",
                           "pinned kernel packages (kernel.tlinux)"),
}

_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


@dataclass(frozen=True)
class HostSpec:
    """One SSH target: ``[user@]host[:port]`` with the file's defaults filled in."""

    host: str
    user: str
    port: int
    label: str = field(default="", compare=False)  # host:port where one address has several ports

    def __str__(self) -> str:
        return self.label or self.host

    @property
    def ident(self) -> str:
        """Who this is: ``user@host:port`` (two hosts behind one address differ by port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def parse_port(text: str, what: str) -> int:
    if not re.fullmatch(r"\d{1,5}", text.strip()) or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{what}: port {V.show(text)} is not a number from 1 to 65535")
    return int(text)


def parse_host(entry: str, *, user: str, port: int, what: str = "host") -> HostSpec:
    """Parse ``[user@]host[:port]`` (IPv6 as ``[addr]:port``)."""
    raw = entry.strip()
    if "@" in raw:
        user, raw = raw.split("@", 1)
        if not _USER.match(user):
            raise ConfigError(f"{what}: bad user name {V.show(user)} in {V.show(entry)}")
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(.*))?", raw)
    if m:
        host, port_text = m.group(1), m.group(2)
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    else:
        host, port_text = raw, None
    if port_text is not None:
        port = parse_port(port_text, f"{what} {V.show(entry)}")
    if not V.is_host(host):
        raise ConfigError(f"{what}: {V.show(entry)} is not [user@]host[:port]")
    return HostSpec(host=host, user=user, port=port)


_CHECKS = {  # kind -> check(value, what) for the kinds whose text is kept as it is
    "user": V.user, "registry": V.registry, "image": V.image, "tag": V.tag,
    "swarmname": V.swarm_name, "project": V.project, "abspath": V.abspath, "version": V.version,
    "hostname": V.hostname, "ip": V.ip, "url": V.url,
}


def _convert(name: str, key: Key, text: str) -> Any:
    if key.kind == "secret":
        if re.search(r"[\x00-\x1f\x7f]", text):
            raise ConfigError(f"{name}: the secret holds a control character (newline, NUL, ...); value not shown")
        return Secret(text)
    text = text.strip()
    if re.search(r"[\x00-\x1f\x7f]", text):
        raise ConfigError(f"{name}: {V.show(text)} holds a control character (newline, NUL, ...)")
    if key.kind == "port":
        return parse_port(text, name)
    if key.kind == "port?":
        return text and str(parse_port(text, name))
    if key.kind == "int":
        return V.whole(text, name)
    if key.kind == "list":
        return tuple(x.strip() for x in text.split(",") if x.strip())
    if key.kind == "choice" and text not in key.choices:
        raise ConfigError(f"{name}: {V.show(text)} is not one of {', '.join(key.choices)}")
    if key.kind == "cidr":
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ConfigError(f"{name}: {V.show(text)} is not a CIDR subnet such as 10.1.0.0/16") from None
    if key.kind == "path" and text:
        return str(Path(text).expanduser())
    if key.kind in _CHECKS and text:
        _CHECKS[key.kind](text, name)
    return text


@dataclass(frozen=True)
class Settings:
    """Typed settings; ``values`` maps KEY -> converted value, ``groups`` maps GROUP -> hosts."""

    values: dict[str, Any]
    groups: dict[str, tuple[HostSpec, ...]]
    source: str = "(defaults)"
    warnings: tuple[str, ...] = field(default=())

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, override: Any = None) -> Any:
        """Argument beats file beats default: ``override`` wins when it is not None."""
        return self.values[key] if override is None else override

    def group(self, name: str) -> tuple[HostSpec, ...]:
        """Hosts of one group (``managers``, ``nodes``, ``all`` ...), in file order, no repeats."""
        upper = name.upper()
        names = DERIVED_GROUPS.get(name.lower()) or ((upper,) if upper in GROUPS else None)
        if names is None:
            known = ", ".join([g.lower() for g in GROUPS] + list(DERIVED_GROUPS))
            raise ConfigError(f"unknown group {name!r} (known: {known})")
        seen: dict[tuple[str, int], HostSpec] = {}
        for g in names:
            for h in self.groups.get(g, ()):
                seen.setdefault((h.host, h.port), h)
        return tuple(seen.values())

    def secrets(self) -> list[Secret]:
        return [v for v in self.values.values() if isinstance(v, Secret) and v]

    def spec_for(self, host: str) -> HostSpec:
        """The group entry for ``host`` (user/port from hosts.env), or one built from defaults."""
        for specs in self.groups.values():
            for s in specs:
                if s.host == host:
                    return s
        return parse_host(host, user=self.values["SSH_USER"], port=self.values["SSH_PORT"])


def parse(text: str, *, environ: dict[str, str] | None = None, source: str = "hosts.env") -> Settings:
    """Parse hosts.env text. Raises ConfigError naming the line for any bad line or key."""
    from dotenv.parser import parse_stream
    import io

    raw: dict[str, tuple[str, int]] = {}
    for binding in parse_stream(io.StringIO(text)):
        original = binding.original.string
        line = binding.original.line + len(original) - len(original.lstrip("\n"))
        if binding.error:
            raise ConfigError(f"{source} line {line}: cannot parse {_snippet(original)} (expected KEY=value)")
        if binding.key is None:
            continue
        if binding.key not in KEYS:
            raise ConfigError(f"{source} line {line}: unknown key {V.cut(binding.key)}")
        if binding.value is None:
            raise ConfigError(f"{source} line {line}: {binding.key} has no '=value'")
        raw[binding.key] = (binding.value, line)
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, key in KEYS.items():
        if (key.kind == "secret" or key.from_env) and environ.get(name):
            raw[name] = (environ[name], 0)
        if name in raw and key.kind != "hosts":
            text_value, line = raw[name]
            where = f"{source} line {line}: {name}" if line else f"environment {name}"
            values[name] = _convert(where, key, text_value)
        elif key.kind != "hosts":
            values[name] = key.default
    groups: dict[str, tuple[HostSpec, ...]] = {}
    lines: dict[str, int] = {}
    for g in GROUPS:
        if g in raw:
            text_value, lines[g] = raw[g]
            entries = [e for e in (x.strip() for x in text_value.split(",")) if e]
            groups[g] = tuple(
                parse_host(e, user=values["SSH_USER"], port=values["SSH_PORT"], what=f"{source} line {lines[g]}: {g}")
                for e in entries
            )
    _check_hosts(groups, lines, source)
    return Settings(values=values, groups=_labelled(groups), source=source)


def _snippet(original: str) -> str:
    """The start of a line the parser refused, for the error: the key only when the line sets a
    secret (an unterminated quote must not echo a password), else cut short."""
    text = original.strip()
    m = re.match(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", text)
    if m and (m.group(1) not in KEYS or KEYS[m.group(1)].kind == "secret"):
        return f"{m.group(1)}=... (value not shown)"
    return V.show(text.splitlines()[0] if text else text)


def _labelled(groups: dict[str, tuple[HostSpec, ...]]) -> dict[str, tuple[HostSpec, ...]]:
    """Name hosts ``host:port`` in reports where one address is listed with several ports."""
    ports: dict[str, set[int]] = {}
    for specs in groups.values():
        for s in specs:
            ports.setdefault(s.host, set()).add(s.port)
    shared = {h for h, p in ports.items() if len(p) > 1}
    return {g: tuple(HostSpec(s.host, s.user, s.port, f"{s.host}:{s.port}") if s.host in shared else s
                     for s in specs) for g, specs in groups.items()}


def _check_hosts(groups: dict[str, tuple[HostSpec, ...]], lines: dict[str, int], source: str) -> None:
    """One host (host:port) is one machine: listed once per group, never both manager and
    worker, and reached with one user; workers need a manager to join."""
    seen: dict[tuple[str, int], tuple[str, HostSpec]] = {}
    for g, specs in groups.items():
        mine: set[tuple[str, int]] = set()
        for spec in specs:
            ident = (spec.host, spec.port)
            where = f"{source} line {lines[g]}: {g}"
            if ident in mine:
                raise ConfigError(f"{where}: {spec.ident} is listed twice")
            mine.add(ident)
            other = seen.get(ident)
            if other and {other[0], g} == {"MANAGERS", "WORKERS"}:
                raise ConfigError(f"{where}: {spec.ident} is in MANAGERS and WORKERS: a node has one role")
            if other and other[1].user != spec.user:
                raise ConfigError(f"{where}: {spec.host}:{spec.port} is {spec.user}@ here but {other[1].user}@ "
                                  f"in {other[0]}: one host, one login")
            seen.setdefault(ident, (g, spec))
    if groups.get("WORKERS") and not groups.get("MANAGERS"):
        raise ConfigError(f"{source} line {lines['WORKERS']}: WORKERS without MANAGERS: workers join a manager")


def env_path(explicit: str | None = None, environ: dict[str, str] | None = None) -> Path:
    """Which hosts file: the task's ``--env-file``, else $SWARMBOOK_ENV, else ./hosts.env."""
    environ = os.environ if environ is None else environ
    return Path(explicit or environ.get("SWARMBOOK_ENV") or "hosts.env")


def load(explicit: str | None = None, *, required: bool = True) -> Settings:
    """Read and parse the hosts file; warn when others can read it (it holds secrets)."""
    path = env_path(explicit)
    if not path.exists():
        if required:
            raise ConfigError(f"hosts file {path} not found (copy hosts.env.example, or set SWARMBOOK_ENV)")
        return parse("", source=str(path))
    if not path.is_file():
        raise ConfigError(f"hosts file {path} is not a file")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a byte-order mark is not part of the first key
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text (byte {exc.object[exc.start]:#04x})") from None
    except OSError as exc:
        raise ConfigError(f"hosts file {path} cannot be read: {exc.strerror}") from None
    settings = parse(text, source=str(path))
    warnings = []
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.append(f"{path} is readable by group or others; it may hold secrets: chmod 600 {path}")
    key = settings.values["SSH_KEY"]
    problem = key_problem(key) if key else ""
    if problem:
        raise ConfigError(f"{path}: SSH_KEY {key} {problem}")
    return Settings(settings.values, settings.groups, settings.source, tuple(warnings))


def key_problem(key: str) -> str:
    """Why ``key`` cannot be an SSH private key file ("" when it can): checked before any host
    is touched, so a .pub file or a folder is one clear line instead of a refusal per host."""
    path = Path(key).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        return "does not exist or is not readable"
    head = path.read_bytes()[:8192]
    if b"-----BEGIN " in head and b"PRIVATE KEY-----" in head:
        return ""
    if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        return "is a public key: use the private key file (without .pub)"
    return "is not a private key file (no '-----BEGIN ... PRIVATE KEY-----' line)"


def stacks_path(settings: "Settings") -> Path:
    """Where stack templates live: STACKS_PATH, else the stacks/ swarmbook ships (swarmbook.assets)."""
    from . import assets

    return Path(settings["STACKS_PATH"]) if settings["STACKS_PATH"] else assets.path("stacks")

