"""Pure builders for moving sshd to another port without a lockout.

sshd_config gets its ``Port`` lines rewritten (both ports while moving, then only the
new one); socket-activated sshd (``ssh.socket``, newer Ubuntu) gets a ListenStream drop-in;
SELinux and firewalld/ufw get the port opened. Every new config is checked with
``sshd -t`` before it is installed.
"""

from __future__ import annotations

import re

from .facts import Fact
from .shell import join, quote

CONFIG = "/etc/ssh/sshd_config"
SOCKET_DROPIN = "/etc/systemd/system/ssh.socket.d/swarmbook-port.conf"
MARK = "# swarmbook: sshd ports (sshd.move-port)"
_PORT = re.compile(r"^\s*Port\s+(\d+)\s*$", re.IGNORECASE)


def ports_in(content: str) -> list[int]:
    """Active Port lines before the first Match block (sshd's default is 22)."""
    ports = []
    for line in content.splitlines():
        if re.match(r"^\s*Match\s", line, re.IGNORECASE):
            break
        m = _PORT.match(line)
        if m:
            ports.append(int(m.group(1)))
    return ports or [22]


def with_ports(content: str, ports: list[int]) -> str:
    """sshd_config with exactly ``ports`` (Port lines go first: they must precede Match)."""
    kept = [ln for ln in content.splitlines() if not _PORT.match(ln) and ln.strip() != MARK]
    head = [MARK] + [f"Port {p}" for p in ports]
    return "\n".join(head + kept) + "\n"


def socket_dropin(ports: list[int]) -> str:
    return "[Socket]\nListenStream=\n" + "".join(f"ListenStream={p}\n" for p in ports)


def write_socket_dropin_cmd(ports: list[int], path: str = SOCKET_DROPIN) -> str:
    """Atomically replace the socket drop-in with one listening on ``ports`` (temp file in its
    folder, then rename, as ops.write_file_cmd does; the content travels inline, since stdin
    carries sshd_config)."""
    f = quote(path)
    return (f"mkdir -p \"$(dirname {f})\" && tmp=$(mktemp {f}.XXXXXX) && "
            f"printf '%s' {quote(socket_dropin(ports))} > \"$tmp\" && chmod 0644 \"$tmp\" && mv -f \"$tmp\" {f}")


def apply_cmd(ports: list[int], *, socket_activated: bool, selinux: bool, firewalld: bool, ufw: bool) -> str:
    """Install sshd_config from stdin (checked by ``sshd -t``), let sshd listen on ``ports``
    (socket drop-in, SELinux, firewall) and restart it once; stops at the first failure."""
    steps = [install_config_cmd()]
    if socket_activated:
        steps.append(write_socket_dropin_cmd(ports))
    steps += open_port_cmds(max(ports), selinux=selinux, firewalld=firewalld, ufw=ufw)
    steps.append(restart_cmd(socket_activated))
    return " && ".join(steps)


def rollback_cmd(old_port: int, *, socket_activated: bool) -> str:
    """Put the previous sshd_config (and a drop-in on ``old_port``) back and restart sshd;
    each step runs even when one before it failed."""
    steps = [restore_config_cmd()]
    if socket_activated:
        steps.append(write_socket_dropin_cmd([old_port]))
    steps.append(restart_cmd(socket_activated))
    return "; ".join(steps)


# What a fresh login on the new port runs to prove it works.
LOGIN_CHECK_CMD = "true"


def install_config_cmd(path: str = CONFIG) -> str:
    """stdin -> temp file -> ``sshd -t`` -> keep a .bak -> atomic rename. Nothing changes if invalid."""
    f = quote(path)
    return (f"tmp=$(mktemp {f}.XXXXXX) && cat > \"$tmp\" && chmod 0644 \"$tmp\" && "
            f"if ! out=$(sshd -t -f \"$tmp\" 2>&1); then rm -f \"$tmp\"; echo \"sshd -t: $out\" >&2; exit 3; fi && "
            f"cp -p {f} {f}.swarmbook.bak && mv -f \"$tmp\" {f}")


def restore_config_cmd(path: str = CONFIG) -> str:
    f = quote(path)
    return f"if [ -f {f}.swarmbook.bak ]; then mv -f {f}.swarmbook.bak {f}; fi"


def open_port_cmds(port: int, *, selinux: bool, firewalld: bool, ufw: bool) -> list[str]:
    """Commands that let sshd listen on / be reached at ``port`` under SELinux and firewalls."""
    p = str(port)
    cmds = []
    if selinux:
        cmds.append(f"semanage port -a -t ssh_port_t -p tcp {p} 2>/dev/null || "
                    f"semanage port -m -t ssh_port_t -p tcp {p}")
    if firewalld:
        cmds.append(join(["firewall-cmd", "--permanent", f"--add-port={p}/tcp"]) + " && firewall-cmd --reload")
    if ufw:
        cmds.append(join(["ufw", "allow", f"{p}/tcp"]))
    return cmds


def restart_cmd(socket_activated: bool) -> str:
    """Restart sshd. ``reset-failed`` first clears systemd's start rate limit (5 starts in 10 s):
    a move and its rollback, or a quick rerun, must never leave the host without sshd."""
    if socket_activated:
        return "systemctl daemon-reload && { systemctl reset-failed ssh.socket; systemctl restart ssh.socket; }"
    # Debian/Ubuntu name the unit ssh (sshd is an alias there); RHEL names it sshd.
    return ("if systemctl cat sshd.service >/dev/null 2>&1; then u=sshd; else u=ssh; fi; "
            "systemctl reset-failed \"$u\" 2>/dev/null; systemctl restart \"$u\"")


ENV = Fact("sshd_env", "; ".join([
    "echo socket=$(systemctl is-active ssh.socket 2>/dev/null)",
    "echo selinux=$(getenforce 2>/dev/null)",
    "echo firewalld=$(systemctl is-active firewalld 2>/dev/null)",
    "echo ufw=$(ufw status 2>/dev/null | head -1)",
]), lambda t, rc: {
    "socket": "socket=active" in t,
    "selinux": "selinux=Enforcing" in t,
    "firewalld": "firewalld=active" in t,
    "ufw": "ufw=Status: active" in t,
})
