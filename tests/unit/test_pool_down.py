"""Pool.connect gives up on a host that could not be reached once in this run (no second
connect timeout per later step), while a fresh connect (reboot, sshd move) still retries."""

import fabric
import pytest

from swarmbook.config import HostSpec
from swarmbook.session import ConnectFailed, Pool


class Unreachable:
    attempts = 0

    def __init__(self, host, **kw):
        self.host = host

    def open(self):
        Unreachable.attempts += 1
        raise TimeoutError("timed out")


@pytest.fixture
def pool(monkeypatch):
    Unreachable.attempts = 0
    monkeypatch.setattr(fabric, "Connection", Unreachable)
    return Pool()


def test_a_host_down_once_fails_at_once_afterwards(pool):
    spec = HostSpec("10.9.9.9", "root", 22)
    with pytest.raises(ConnectFailed, match="no answer"):
        pool.connect(spec)
    with pytest.raises(ConnectFailed, match="earlier in this run; not retried"):
        pool.connect(spec)
    assert Unreachable.attempts == 1
    with pytest.raises(ConnectFailed):
        pool.connect(spec, fresh=True)  # e.g. waiting for a reboot: really tries again
    assert Unreachable.attempts == 2


def test_another_port_of_the_same_host_is_tried(pool):
    with pytest.raises(ConnectFailed):
        pool.connect(HostSpec("10.9.9.9", "root", 22))
    with pytest.raises(ConnectFailed, match="no answer"):
        pool.connect(HostSpec("10.9.9.9", "root", 2222))
    assert Unreachable.attempts == 2
