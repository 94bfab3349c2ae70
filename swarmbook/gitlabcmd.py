"""Pure builders for GitLab CE in Docker: the container, its health, gitlab.rb SMTP settings,
and the initial root password file."""

from __future__ import annotations

import hashlib
import re

from .containercmd import Container
from .facts import Fact
from .shell import join, quote

CONTAINER = "gitlab"
PASSWORD_FILE = "/etc/gitlab/initial_root_password"


def container(*, image: str, hostname: str, home: str, ports: tuple[str, ...]) -> Container:
    """The runbook's `docker run -d --hostname ... --restart always --volume /srv/gitlab/...`."""
    return Container(name=CONTAINER, image=image, hostname=hostname, ports=tuple(ports), restart="always",
                     volumes=(f"{home}/config:/etc/gitlab", f"{home}/logs:/var/log/gitlab",
                              f"{home}/data:/var/opt/gitlab"))


def dirs_fact(home: str) -> Fact:
    """True when every folder the container mounts exists under ``home``."""
    return Fact("dirs", join(["test", "-d", f"{home}/config", "-a", "-d", f"{home}/logs", "-a", "-d", f"{home}/data"]),
                lambda t, rc: rc == 0)


def make_dirs_cmd(home: str) -> str:
    return join(["mkdir", "-p", f"{home}/config", f"{home}/logs", f"{home}/data"])


def host_port(ports: tuple[str, ...] | list[str], container_port: int) -> int | None:
    """Host port published for ``container_port`` (``[addr:]host:container[/proto]``)."""
    for p in ports:
        parts = p.split("/")[0].split(":")
        if len(parts) >= 2 and parts[-1] == str(container_port):
            return int(parts[-2])
    return None


def bad_port(p: str) -> str:
    if not re.fullmatch(r"(\d{1,3}(\.\d{1,3}){3}:)?\d{1,5}:\d{1,5}(/(tcp|udp))?", p):
        return f"port {p!r} is not [address:]host:container"
    return ""


def listeners_fact(port: int) -> Fact:
    """Names of the processes listening on TCP ``port`` (e.g. {'sshd'}; empty set: free)."""
    return Fact(f"listen:{port}", join(["ss", "-Hltnp", f"sport = :{port}"]),
                lambda t, rc: set(re.findall(r'\(\("([^"]+)"', t)))


def ruby_str(value: str) -> str:
    """A double-quoted Ruby string literal (no interpolation)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("#", "\\#") + '"'


def smtp_settings(s, password: str) -> dict[str, str]:
    """gitlab.rb key -> Ruby value, the runbook's SMTP block from hosts.env values."""
    out = {
        "gitlab_rails['smtp_enable']": "true",
        "gitlab_rails['smtp_address']": ruby_str(s["GITLAB_SMTP_ADDRESS"]),
        "gitlab_rails['smtp_port']": str(int(s["GITLAB_SMTP_PORT"])),
        "gitlab_rails['smtp_user_name']": ruby_str(s["GITLAB_SMTP_USER"]),
        "gitlab_rails['smtp_password']": ruby_str(password),
        "gitlab_rails['smtp_authentication']": ruby_str(s["GITLAB_SMTP_AUTH"]),
        "gitlab_rails['smtp_enable_starttls_auto']": s["GITLAB_SMTP_STARTTLS"],
        "gitlab_rails['smtp_tls']": s["GITLAB_SMTP_TLS"],
    }
    if s["GITLAB_SMTP_DOMAIN"]:
        out["gitlab_rails['smtp_domain']"] = ruby_str(s["GITLAB_SMTP_DOMAIN"])
    if s["GITLAB_EMAIL_FROM"]:
        out["gitlab_rails['gitlab_email_from']"] = ruby_str(s["GITLAB_EMAIL_FROM"])
    return out


def with_settings(content: str, settings: dict[str, str]) -> str:
    """gitlab.rb with every setting present once (replacing the active or commented line)."""
    from .files import with_key_value

    for key, value in settings.items():
        content = with_key_value(content, key, value, sep=" = ")
    return content


def parse_root_password(text: str) -> str:
    m = re.search(r"^Password:\s*(\S+)\s*$", text, re.MULTILINE)
    return m.group(1) if m else ""


def reconfigure_cmd(marker: str | None = None, content: str = "") -> str:
    """``gitlab-ctl reconfigure``; then record which gitlab.rb it applied (sha256 in ``marker``),
    so a run killed between writing gitlab.rb and reconfiguring is finished by the next run."""
    cmd = join(["docker", "exec", CONTAINER, "gitlab-ctl", "reconfigure"])
    if marker is None:
        return cmd
    return f"{cmd} && (umask 077; printf '%s\\n' {applied_hash(content)} > {quote(marker)})"


def applied_hash(content: str) -> str:
    return hashlib.sha256(content.encode()).hexdigest()


def applied_marker(gitlab_rb: str) -> str:
    return gitlab_rb.rsplit("/", 1)[0] + "/.swarmbook-applied"


def read_password_cmd() -> str:
    return join(["docker", "exec", CONTAINER, "cat", PASSWORD_FILE])


# --- backup (GitLab's own `gitlab-backup create`, plus what it leaves out) ---------------------

BACKUP_DIR = "/var/opt/gitlab/backups"  # gitlab_rails['backup_path'] default; on GITLAB_HOME/data
# GitLab's docs: the backup holds neither; without gitlab-secrets.json encrypted data (2FA,
# CI variables, runner tokens) cannot be read after a restore
SECRETS_JSON, GITLAB_RB = "/etc/gitlab/gitlab-secrets.json", "/etc/gitlab/gitlab.rb"


def backup_create_cmd() -> str:
    """GitLab's own backup in the container (12.2 and later; the docs' `docker exec -t`, without a tty)."""
    return join(["docker", "exec", CONTAINER, "gitlab-backup", "create"])


def parse_backup_id(output: str) -> str:
    """The backup's ID from gitlab-backup's output ('' when it did not say it finished)."""
    m = re.search(r"Backup ([\w.-]+) is done\.", output)
    if m:
        return m.group(1)
    m = re.search(r"Creating backup archive: ([\w.-]+)_gitlab_backup\.tar \.\.\. done", output)
    return m.group(1) if m else ""


def backup_tar(backup_id: str) -> str:
    return f"{BACKUP_DIR}/{backup_id}_gitlab_backup.tar"


def fetch_file_cmd(path: str) -> str:
    """A file of the container brought here checked (backupfile.fetch_cmd)."""
    from .backupfile import fetch_cmd

    return fetch_cmd(join(["docker", "exec", CONTAINER, "cat", path]))


def files_fact() -> Fact:
    """Which of gitlab-secrets.json and gitlab.rb exist in the container ({path: bool})."""
    paths = (SECRETS_JSON, GITLAB_RB)
    test = " ; ".join(f"{join(['docker', 'exec', CONTAINER, 'test', '-f', p])} && echo {quote(p)}" for p in paths)
    return Fact("gitlab_files", test, lambda t, rc: {p: p in t.split() for p in paths})


def tar_problem(data: bytes) -> str:
    """Why ``data`` is not a GitLab backup tar ('' when it is: a tar with backup_information.yml)."""
    import io
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            names = tf.getnames()
    except tarfile.TarError as exc:
        return f"not a tar ({exc})"
    if "backup_information.yml" not in [n.lstrip("./") for n in names]:
        return "no backup_information.yml in it (not made by gitlab-backup)"
    return ""


# --- restore (GitLab's docs, "Restore for Docker image installations") ------------------------

def put_cmd(path: str, *, owner: str = "") -> str:
    """Write stdin to ``path`` in the container, 0600; owned by ``owner`` where that user exists
    (GitLab's restore wants its tar owned by git)."""
    script = 'umask 077 && cat > "$0" && { [ -z "$1" ] || ! id "$1" >/dev/null 2>&1 || chown "$1:$1" "$0"; }'
    return join(["docker", "exec", "-i", CONTAINER, "sh", "-c", script, path, owner])


def ctl_cmd(action: str, service: str) -> str:
    return join(["docker", "exec", CONTAINER, "gitlab-ctl", action, service])


def backup_restore_cmd(backup_id: str) -> str:
    """GitLab's restore of BACKUP_DIR/ID_gitlab_backup.tar without its yes/no prompt."""
    return join(["docker", "exec", CONTAINER, "gitlab-backup", "restore", f"BACKUP={backup_id}", "force=yes"])


def restart_cmd() -> str:
    return join(["docker", "restart", CONTAINER])


def file_sum_fact(path: str) -> Fact:
    """sha256 of a file in the container ('' when it cannot be read)."""
    return Fact(f"sum:{path}", join(["docker", "exec", CONTAINER, "sha256sum", path]),
                lambda t, rc: t.split()[0] if rc == 0 and t.split() else "")
