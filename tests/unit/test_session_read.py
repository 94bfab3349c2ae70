"""The SSH read loop: all output is read even when sshd sends the exit status first.

A scripted channel stands in for paramiko's (the real one is exercised by every lab test);
it delivers the exit status before the output, as OpenSSH may when the child exits while its
pipe still holds data: the CI run that lost a batched fact's tail read this way.
"""

import pytest

from swarmbook import session


class Transport:
    def __init__(self, active=True):
        self.active = active

    def is_active(self):
        return self.active


class ScriptedChannel:
    """Polls 0..n: exit status from poll 0, stdout chunks later, EOF after the last chunk."""

    def __init__(self, chunks, *, eof=True, exit_first=True, active=True):
        self.chunks = list(chunks)
        self.polls = 0
        self.eof = eof
        self.exit_first = exit_first
        self.closed = False
        self.transport = Transport(active)

    @property
    def eof_received(self):
        return self.eof and not self.chunks

    def _tick(self):
        self.polls += 1

    def recv_ready(self):
        self._tick()
        return bool(self.chunks) and self.polls % 3 == 0  # data trickles in

    def recv(self, n):
        return self.chunks.pop(0)

    def recv_stderr_ready(self):
        return False

    def exit_status_ready(self):
        return self.exit_first or not self.chunks

    def get_transport(self):
        return self.transport

    def fileno(self):
        raise AssertionError("select is patched out")


@pytest.fixture(autouse=True)
def no_select(monkeypatch):
    monkeypatch.setattr(session.select, "select", lambda *a: None)


def test_output_after_the_exit_status_is_still_read():
    chan = ScriptedChannel([b"@@a:0@@\n", b"10.0.0.0/8\n", b"@@a:0:rc=0@@\n"])
    out, err = bytearray(), bytearray()
    session._read_all(chan, out, err, timeout=5)
    assert out == b"@@a:0@@\n10.0.0.0/8\n@@a:0:rc=0@@\n"


def test_no_eof_after_exit_status_gives_up_after_the_grace(monkeypatch):
    monkeypatch.setattr(session, "EOF_GRACE_SECONDS", 0.05)
    chan = ScriptedChannel([], eof=False)  # a background child keeps stdout open
    out = bytearray()
    session._read_all(chan, out, bytearray(), timeout=5)
    assert out == b""


def test_closed_without_exit_status_is_a_lost_connection():
    chan = ScriptedChannel([], exit_first=False, eof=False)
    chan.exit_status_ready = lambda: False
    chan.closed = True
    with pytest.raises(ConnectionError):
        session._read_all(chan, bytearray(), bytearray(), timeout=5)


def test_timeout_names_the_limit():
    chan = ScriptedChannel([], exit_first=False, eof=False)
    chan.exit_status_ready = lambda: False
    with pytest.raises(TimeoutError, match="within 0s"):
        session._read_all(chan, bytearray(), bytearray(), timeout=0.01)
