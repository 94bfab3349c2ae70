"""The host key check inside a real SSH handshake (paramiko's server on loopback, see
sshserver.py): the pool records a new host, refuses a changed key before authenticating
(no login, no channel, no command, no stdin reach that host), asks for the recorded key
type first, and a run reports the refused host as failed while the others go on."""

from __future__ import annotations

import shutil

import pytest

from swarmbook import knownhosts as kh
from swarmbook.config import HostSpec, parse
from swarmbook.engine import Run
from swarmbook.hostkeys import KnownHosts
from swarmbook.report import Reporter
from swarmbook.session import ConnectFailed, Pool
from swarmbook.shell import Secret

from .sshserver import SSHServer, keygen, load

pytestmark = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="needs OpenSSH's ssh-keygen")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return {"client": keygen(d / "client"), "a": load(keygen(d / "a")), "b": load(keygen(d / "b")),
            "ec": load(keygen(d / "ec", "ecdsa"))}


def _connect(pool, srv, known, keys, fresh=False):
    return pool.connect(HostSpec(srv.addr, "root", srv.port), known_hosts=known, key=str(keys["client"]),
                        timeout=5, fresh=fresh)


def test_a_new_host_is_recorded_and_a_changed_key_gets_no_login_no_channel_no_command(tmp_path, keys):
    known = KnownHosts(tmp_path / "known_hosts")
    pool = Pool()
    with SSHServer([keys["a"]]) as srv:
        conn = _connect(pool, srv, known, keys)
        assert pool.exec(conn, "echo first").stdout == "ran\n"
        name = f"[127.0.0.1]:{srv.port}"
        (entry,) = kh.parse(known.record_to.read_text(), str(known.record_to))
        assert entry.names == (name,) and entry.blob == keys["a"].asbytes()
        seen = (srv.seen.auths, srv.seen.channels, list(srv.seen.commands))

        srv.host_keys = [keys["b"]]  # the host now presents another key
        with pytest.raises(ConnectFailed) as err:
            _connect(pool, srv, known, keys, fresh=True)
        line = str(err.value)
        assert "\n" not in line
        assert line.startswith(f"host key of root@127.0.0.1:{srv.port} has changed: ")
        assert f"offered ssh-ed25519 {kh.fingerprint(keys['b'].asbytes())}" in line
        assert f"recorded ssh-ed25519 {kh.fingerprint(keys['a'].asbytes())} in {known.record_to} line 1" in line
        assert f"ssh-keygen -R '{name}' -f {known.record_to}" in line
        assert (srv.seen.auths, srv.seen.channels, srv.seen.commands) == seen  # refused before login
        later = Pool()  # a later run: like an unreachable host, tried once, then failed at once
        with pytest.raises(ConnectFailed, match="has changed"):
            _connect(later, srv, known, keys)
        with pytest.raises(ConnectFailed, match=r"has changed.*\(earlier in this run; not retried\)"):
            _connect(later, srv, known, keys)
        assert (srv.seen.auths, srv.seen.channels, srv.seen.commands) == seen

        srv.host_keys = [keys["a"]]  # the real host is back
        conn = _connect(pool, srv, known, keys, fresh=True)
        assert pool.exec(conn, "echo again").rc == 0
        assert srv.seen.commands == ["echo first", "echo again"]
    pool.close()


def test_the_recorded_key_type_is_asked_for_first(tmp_path, keys):
    """The host has ed25519 and ECDSA keys, only ECDSA is on record (an older ssh recorded it):
    the transport asks for ECDSA first, so the host is known, not 'changed'."""
    known = KnownHosts(tmp_path / "known_hosts")
    pool = Pool()
    with SSHServer([keys["a"], keys["ec"]]) as srv:
        known.record_to.write_text(kh.entry_line(f"[127.0.0.1]:{srv.port}", keys["ec"].get_name(),
                                                 keys["ec"].asbytes()))
        conn = _connect(pool, srv, known, keys)
        assert conn.client.get_transport().get_remote_server_key().get_name() == "ecdsa-sha2-nistp256"
        assert len(known.record_to.read_text().splitlines()) == 1
    pool.close()


def test_a_run_fails_the_refused_host_sends_it_nothing_and_goes_on_with_the_others(tmp_path, keys):
    known = KnownHosts(tmp_path / "known_hosts")
    with SSHServer([keys["a"]], "127.0.0.1") as good, SSHServer([keys["b"]], "127.0.0.2") as bad:
        known.record_to.write_text(
            kh.entry_line(f"[127.0.0.1]:{good.port}", "ssh-ed25519", keys["a"].asbytes())
            + kh.entry_line(f"[127.0.0.2]:{bad.port}", "ssh-ed25519", keys["a"].asbytes()))
        settings = parse(f"SSH_KEY={keys['client']}\nREGISTRY_PASSWORD=s3cret-canary\n", environ={})
        reporter = Reporter(json_lines=True)
        run = Run("test.write", settings, reporter, pool=Pool())
        run.known_hosts = known
        specs = [HostSpec("127.0.0.1", "root", good.port), HostSpec("127.0.0.2", "root", bad.port)]
        run.each(specs, lambda h: h.change("write the marker", "touch /marker",
                                           stdin=settings["REGISTRY_PASSWORD"]))
        assert run.failed() == ["127.0.0.2"]
        events = [e for e in reporter.events if e.host == "127.0.0.2"]
        assert [(e.step, e.status) for e in events] == [("connect", "failed")]
        assert f"host key of root@127.0.0.2:{bad.port} has changed" in events[0].reason
        assert (bad.seen.auths, bad.seen.channels, bad.seen.commands, bad.seen.stdin) == (0, 0, [], [])
        assert good.seen.commands == ["touch /marker"] and good.seen.stdin == [b"s3cret-canary"]
        run.pool.close()
    assert isinstance(settings["REGISTRY_PASSWORD"], Secret)


def test_vouch_records_the_checked_key_under_the_new_port(tmp_path, keys):
    """sshd.move-port: the host's key, proved on the old port, is recorded for the new one, so
    the first login on the new port meets a known host (no accept-new window)."""
    known = KnownHosts(tmp_path / "known_hosts")
    pool = Pool()
    with SSHServer([keys["a"]]) as srv:
        conn = _connect(pool, srv, known, keys)
        pool.vouch(conn, HostSpec("127.0.0.1", "root", 2222), known)
        entries = kh.parse(known.record_to.read_text(), "")
        assert [e.names for e in entries] == [(f"[127.0.0.1]:{srv.port}",), ("[127.0.0.1]:2222",)]
        assert {e.blob for e in entries} == {keys["a"].asbytes()}
        known.record_to.write_text(kh.entry_line("[127.0.0.1]:2222", "ssh-ed25519", keys["b"].asbytes()))
        with pytest.raises(ConnectFailed, match=r"host key of root@127.0.0.1:2222 has changed"):
            pool.vouch(conn, HostSpec("127.0.0.1", "root", 2222), known)  # never overwrites a record
    pool.close()
