"""sshd: move the SSH port (22 -> 2222 by default) so GitLab can take 22, without a lockout.

Order: listen on both ports, verify a fresh login on the new port from here, only then drop
the old one. Any failure puts the previous config back and checks the old port still answers.
The hosts file is updated so later tasks (and runs) connect on the new port.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.errors import StepFailed
from swarmbook.lazy import lazy
from swarmbook.taskdef import host_task, refuse

if TYPE_CHECKING:
    from swarmbook.engine import Host

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import config, envfile, facts, sshdcmd, session
else:
    config = lazy("swarmbook.config")
    envfile = lazy("swarmbook.envfile")
    facts = lazy("swarmbook.facts")
    sshdcmd = lazy("swarmbook.sshdcmd")
    session = lazy("swarmbook.session")


def _validate(settings, port=None):
    value = settings.get("SSHD_PORT", port)
    if not value:
        refuse("no port: pass --port or set SSHD_PORT")
    config.parse_port(str(value), "--port")


def _login(h: Host, port: int) -> str:
    """'' when a fresh SSH login on ``port`` works from this machine, else why not."""
    spec = config.HostSpec(h.spec.host, h.spec.user, port)
    try:
        h.run_.pool.vouch(h.conn, spec, h.run_.known_hosts)  # same host, same key, new port
        conn = h.run_.connect(spec, fresh=True)
        res = h.run_.pool.exec(conn, sshdcmd.LOGIN_CHECK_CMD, timeout=30)
        return "" if res.rc == 0 else f"exit {res.rc}"
    except (session.ConnectFailed, OSError, TimeoutError) as exc:
        return str(exc)


def _apply(h: Host, content: str, ports: list[int], env: dict) -> None:
    """Install sshd_config with ``ports`` (validated by sshd -t) and restart sshd once."""
    h.run(sshdcmd.apply_cmd(ports, socket_activated=env["socket"], selinux=env["selinux"],
                            firewalld=env["firewalld"], ufw=env["ufw"]),
          stdin=sshdcmd.with_ports(content, ports), step=f"sshd on {ports}")


def _rollback(h: Host, content: str, old: int, env: dict, why: str) -> None:
    h.try_run(sshdcmd.rollback_cmd(old, socket_activated=env["socket"]))
    back = _login(h, old)
    raise StepFailed(f"login on the new port failed ({why}); previous sshd config restored, "
                     + (f"port {old} answers" if not back else f"port {old} ALSO FAILS: {back}"))


@host_task(group="gitlab", name="move-port", validate=_validate, help={
    "port": "the new sshd port (default SSHD_PORT, i.e. 2222, the runbook's choice)",
})
def move_port(h: Host, port=None):
    """Move sshd to another port (default 2222) without lockout; record it in the hosts file."""
    new, old = int(h.settings.get("SSHD_PORT", port)), h.spec.port
    f = h.probe(facts.file_state(sshdcmd.CONFIG, "cfg"), sshdcmd.ENV)
    if f["cfg"] is None:
        h.fail("sshd port", f"{sshdcmd.CONFIG} not found")
    content, env = f["cfg"]["content"], f["sshd_env"]
    current = sshdcmd.ports_in(content)
    if current == [new]:
        h.ok(f"sshd on port {new}")
    elif h.check:
        h.change(f"sshd port {old} -> {new}", None, reason="listen on both, verify, drop old")
        return
    else:
        _apply(h, content, sorted({old, new}), env)
        why = _login(h, new)
        if why:
            _rollback(h, content, old, env, why)
        _apply(h, content, [new], env)
        why = _login(h, new)
        if why:
            _rollback(h, content, old, env, why)
        h.change(f"sshd port {old} -> {new}", None, reason="fresh login on the new port verified")
    h.spec = config.HostSpec(h.spec.host, h.spec.user, new)
    if envfile.record_port(h.settings.source, h.spec.host, new):
        h.note(f"{h.settings.source}: {h.spec.host} now uses port {new}")


ns = Collection("sshd", move_port)
