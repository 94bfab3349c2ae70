"""Recording host keys in a known_hosts file: first contact recorded (0600 file, 0700 folder),
the user's entries honoured, hashed files kept hashed, a changed key refused naming the file
and line, and recording safe from many threads and processes at once."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
import threading

import pytest

from swarmbook import knownhosts as kh
from swarmbook.hostkeys import HostKeyRefused, KnownHosts

from .test_knownhosts import BLOB_A, BLOB_B, ED_A

ED = "ssh-ed25519"


def test_first_contact_is_recorded_in_a_new_private_file(tmp_path):
    known = KnownHosts(tmp_path / "sb" / "known_hosts")
    assert known.verify("root@h1:2222", "[h1]:2222", ED, BLOB_A) == kh.NEW
    f = tmp_path / "sb" / "known_hosts"
    assert f.read_text() == f"[h1]:2222 {ED} {ED_A}\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert known.verify("root@h1:2222", "[h1]:2222", ED, BLOB_A) == kh.KNOWN
    assert f.read_text().count("\n") == 1  # known now: not written again


def test_a_changed_key_is_refused_naming_the_file_and_line_and_nothing_is_written(tmp_path):
    f = tmp_path / "known_hosts"
    f.write_text(f"# ours\nh0 {ED} {ED_A}\nh1 {ED} {ED_A}\n")
    with pytest.raises(HostKeyRefused) as err:
        KnownHosts(f).verify("root@h1:22", "h1", ED, BLOB_B)
    msg = str(err.value)
    assert f"offered {ED} {kh.fingerprint(BLOB_B)}, recorded {ED} {kh.fingerprint(BLOB_A)} in {f} line 3" in msg
    assert f"ssh-keygen -R h1 -f {f}" in msg
    assert f.read_text().count("\n") == 3


def test_the_users_known_hosts_is_honoured_hashed_entries_included(tmp_path):
    user = tmp_path / "user_known_hosts"
    user.write_text(kh.entry_line("h1", ED, BLOB_A, hashed=True))
    record = tmp_path / "record"
    known = KnownHosts(record, (user,))
    assert known.verify("root@h1:22", "h1", ED, BLOB_A) == kh.KNOWN
    assert not record.exists()  # trusted by the user's file: nothing to record
    with pytest.raises(HostKeyRefused, match=f"in {user} line 1"):
        known.verify("root@h1:22", "h1", ED, BLOB_B)


def test_a_hashed_file_gets_hashed_entries_and_a_missing_newline_is_added(tmp_path):
    f = tmp_path / "known_hosts"
    f.write_text(kh.entry_line("h0", ED, BLOB_A, hashed=True).rstrip("\n"))  # no newline at the end
    KnownHosts(f).verify("root@h1:22", "h1", ED, BLOB_B)
    lines = f.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("|1|") and "h1" not in lines[1]
    assert KnownHosts(f).verify("root@h1:22", "h1", ED, BLOB_B) == kh.KNOWN


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_file_that_cannot_be_written_refuses_the_new_host(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(HostKeyRefused, match="cannot record the host key of h1"):
        KnownHosts(ro / "known_hosts").verify("root@h1:22", "h1", ED, BLOB_A)


def test_a_folder_as_the_file_refuses_the_new_host_in_one_line(tmp_path):
    with pytest.raises(HostKeyRefused, match=r"cannot record the host key of h1 in .*: Is a directory"):
        KnownHosts(tmp_path).verify("root@h1:22", "h1", ED, BLOB_A)


def _blob(i: int) -> bytes:
    return BLOB_A[:-4] + i.to_bytes(4, "big")


@pytest.fixture
def slow_write(monkeypatch):
    """Widen the window between reading the file and appending to it (5 ms), so recording
    without the lock would lose or double lines every time, not now and then."""
    import time

    from swarmbook import hostkeys

    line = kh.entry_line

    def slow(*a, **kw):
        time.sleep(0.005)
        return line(*a, **kw)

    monkeypatch.setattr(hostkeys.knownhosts, "entry_line", slow)


def test_parallel_threads_record_each_host_once(tmp_path, slow_write):
    f = tmp_path / "known_hosts"
    start = threading.Barrier(24)
    results: list[str] = []

    def connect(i: int) -> None:
        start.wait()
        known = KnownHosts(f)  # each connect reads the file itself, as the pool's threads do
        results.append(known.verify(f"root@h{i % 8}:22", f"h{i % 8}", ED, _blob(i % 8)))

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = f.read_text().splitlines()
    assert sorted(lines) == sorted(f"h{i} {ED} {base64.b64encode(_blob(i)).decode()}" for i in range(8))
    assert sorted(results) == [kh.KNOWN] * 16 + [kh.NEW] * 8


def test_two_keys_racing_for_one_new_host_one_is_recorded_the_other_refused(tmp_path, slow_write):
    f = tmp_path / "known_hosts"
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def connect(i: int) -> None:
        start.wait()
        try:
            outcomes.append(KnownHosts(f).verify("root@h1:22", "h1", ED, _blob(i)))
        except HostKeyRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [kh.NEW] + ["refused"] * 7
    assert len(f.read_text().splitlines()) == 1


def _record_many(path: str, first: int) -> None:
    known = KnownHosts(__import__("pathlib").Path(path))
    for i in range(first, first + 25):
        known.verify(f"root@h{i}:22", f"h{i}", ED, _blob(i))


def test_parallel_processes_append_whole_lines(tmp_path, slow_write):
    f = tmp_path / "known_hosts"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(f), 25 * k)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert all(p.exitcode == 0 for p in procs)
    entries = kh.parse(f.read_text(), str(f))
    assert len(f.read_text().splitlines()) == len(entries) == 100
    assert {e.names[0] for e in entries} == {f"h{i}" for i in range(100)}
