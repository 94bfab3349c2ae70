"""Pool.connect gives up on a host that could not be reached once in this run (no second
connect timeout per later step), while a fresh connect (reboot, sshd move) still retries."""

from pathlib import Path

import fabric
import pytest

from swarmbook import session
from swarmbook.config import HostSpec
from swarmbook.hostkeys import KnownHosts
from swarmbook.session import ConnectFailed, Pool

# no test here gets as far as an SSH handshake: this file is never written
KNOWN = KnownHosts(Path("/nonexistent/swarmbook-test/known_hosts"))


class Unreachable:
    """The TCP connect times out (no SSH connection is ever made)."""
    attempts = 0

    @staticmethod
    def dial(spec, timeout):
        Unreachable.attempts += 1
        raise TimeoutError("timed out")

    def __init__(self, host, **kw):
        raise AssertionError("no SSH connection after a failed TCP connect")


@pytest.fixture
def pool(monkeypatch):
    Unreachable.attempts = 0
    monkeypatch.setattr(session, "_dial", Unreachable.dial)
    monkeypatch.setattr(fabric, "Connection", Unreachable)
    return Pool()


def test_a_host_down_once_fails_at_once_afterwards(pool):
    spec = HostSpec("10.9.9.9", "root", 22)
    with pytest.raises(ConnectFailed, match="no answer"):
        pool.connect(spec, known_hosts=KNOWN)
    with pytest.raises(ConnectFailed, match="earlier in this run; not retried"):
        pool.connect(spec, known_hosts=KNOWN)
    assert Unreachable.attempts == 1
    with pytest.raises(ConnectFailed):
        pool.connect(spec, known_hosts=KNOWN, fresh=True)  # e.g. waiting for a reboot: really tries again
    assert Unreachable.attempts == 2


def test_another_port_of_the_same_host_is_tried(pool):
    with pytest.raises(ConnectFailed):
        pool.connect(HostSpec("10.9.9.9", "root", 22), known_hosts=KNOWN)
    with pytest.raises(ConnectFailed, match="no answer"):
        pool.connect(HostSpec("10.9.9.9", "root", 2222), known_hosts=KNOWN)
    assert Unreachable.attempts == 2


def test_the_socket_is_tuned_before_the_ssh_handshake():
    """TCP_NODELAY is on before paramiko sends its first byte (the handshake's small packets
    would otherwise wait on delayed ACKs); a plain listener stands in for sshd."""
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    try:
        sock = session._dial(HostSpec("127.0.0.1", "root", srv.getsockname()[1]), 5)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        sock.close()
    finally:
        srv.close()


def test_a_refused_port_is_one_line_naming_the_host():
    import socket

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    srv.close()  # nothing listens there now
    with pytest.raises(ConnectFailed, match=f"cannot connect to root@127.0.0.1:{port}: .*refused"):
        Pool().connect(HostSpec("127.0.0.1", "root", port), known_hosts=KNOWN)


class _Transport:
    def __init__(self, active=True):
        self.active, self.opened = active, 0

    def is_active(self):
        return self.active

    def open_session(self):
        self.opened += 1
        raise RuntimeError("stop here: the channel is not what this test is about")


class _Conn:
    def __init__(self, transport):
        self.user, self.host, self.port = "deploy", "10.9.9.8", 22
        self.client = type("Client", (), {"get_transport": lambda s: transport})()


def test_a_step_holding_a_replaced_connection_runs_on_the_new_one():
    """docker.install reconnects after adding a non-root user to the docker group (a fresh
    connect closes the old connection); the cluster lock's holder still has the old one and
    must run its release on the new one (found in the lab: 'NoneType' has no 'open_session')."""
    pool = Pool()
    old, new = _Conn(None), _Conn(_Transport())
    pool._conns[("deploy", "10.9.9.8", 22)] = new
    with pytest.raises(RuntimeError, match="stop here"):
        pool.exec(old, "true")
    assert new.client.get_transport().opened == 1
    live = _Conn(_Transport())  # a live connection is used as it is, whatever the pool holds
    with pytest.raises(RuntimeError, match="stop here"):
        pool.exec(live, "true")
    assert live.client.get_transport().opened == 1 and new.client.get_transport().opened == 1
