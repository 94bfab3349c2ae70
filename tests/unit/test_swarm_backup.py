"""swarm.backup / swarm.restore: the builders (archive checked, quorum arithmetic) and the flow
against a scripted pool (what is refused before anything stops, the engine started again
whatever happens, the unlock key kept 0600 and never printed)."""

import base64
import json
import os
import re

import pytest

import swarmbook.tasks.swarmstate as TS
from swarmbook import backupfile, facts, raftcmd, taskdef
from swarmbook.errors import ConfigError
from swarmbook.session import Result

from .fakes import Clock, FakePool, make_run, tar_bytes

KEY = "SWMKEY-1-s3cret-canary"
OK = Result("", "", 0)


def archive(members=("swarm/raft/wal-v3-encrypted/0.wal", "swarm/certificates/swarm-node.crt")) -> bytes:
    return tar_bytes({name: b"x" * 10 for name in members}, gz=True)


def node(reach="reachable", manager=True):
    return {"ID": "n", "ManagerStatus": {"Reachability": reach} if manager else None}


@pytest.mark.parametrize("nodes, lose", [
    ([node()], True),                                         # one manager: stopping it loses quorum
    ([node(), node(), node()], False),                        # 3 managers: one may go
    ([node(), node(), node("unreachable")], True),            # 3, one already down: the next would lose it
    ([node(), node(), node(), node(), node()], False),
    ([node(), node(manager=False), node(manager=False)], True),
])
def test_quorum_before_stopping_a_manager(nodes, lose):
    assert raftcmd.loses_quorum(*raftcmd.quorum(nodes)) is lose


def test_an_archive_holds_swarm_only():
    assert raftcmd.check_archive(archive()) == ""
    assert "unexpected member" in raftcmd.check_archive(archive(("swarm/raft/x", "../etc/passwd")))
    assert "no swarm/raft" in raftcmd.check_archive(archive(("swarm/certificates/x",)))
    assert "not a gzip'ed tar" in raftcmd.check_archive(b"nope")


def info(state="active", manager=True, autolock=False):
    return json.dumps({"Name": "h1", "Swarm": {"LocalNodeState": state, "ControlAvailable": manager, "NodeID": "n1",
                                               "Cluster": {"ID": "c", "Spec": {"EncryptionConfig":
                                                                               {"AutoLockManagers": autolock}}}}})


def _backup(tmp_path, nodes, *, autolock=False, offline=False):
    data = archive()
    pool = FakePool({facts.docker_info(): (info(autolock=autolock), 0),
                     raftcmd.NODES: (json.dumps(nodes), 0),
                     raftcmd.NODES_ANSWER: ("[]", 0)},
                    {r"^systemctl stop docker.socket docker.service$": OK,
                     r"^f=\$\(mktemp\) && tar -C /var/lib/docker -czf": Result(
                         f"{backupfile.sha256(data)}\n{base64.b64encode(data).decode()}", "", 0),
                     r"^systemctl reset-failed docker.service": OK,
                     r"^docker swarm unlock-key -q$": Result(KEY + "\n", "", 0),
                     r"^docker swarm unlock$": OK})
    clock = Clock()
    run, out = make_run(pool, "MANAGERS=h1\n", task="swarm.backup", clock=clock, sleep=clock.sleep)
    taskdef.execute(TS.backup.body.swarmbook, run, list(run.settings.group("managers")), (),
                    {"to": str(tmp_path), "offline": offline})
    return pool, run, out.getvalue()


def test_backup_refuses_to_stop_the_only_manager_without_offline(tmp_path):
    pool, run, out = _backup(tmp_path, [node()])
    assert run.failed() == ["h1"] and "would lose quorum" in out and "nothing stopped" in out
    assert not [c for c, _ in pool.sent if c.startswith("systemctl stop")] and list(tmp_path.iterdir()) == []


def test_backup_stops_archives_starts_and_keeps_the_unlock_key_private(tmp_path):
    pool, run, out = _backup(tmp_path, [node()], autolock=True, offline=True)
    assert run.failed() == [], out
    order = [c.split()[0] + " " + c.split()[1] for c, _ in pool.sent if c.startswith(("systemctl", "docker swarm"))]
    assert order == ["docker swarm", "systemctl stop", "systemctl reset-failed", "docker swarm"]
    assert [stdin for c, stdin in pool.sent if c == "docker swarm unlock"] == [KEY]
    (archive_file,) = tmp_path.glob("swarm-h1-*.tar.gz")
    assert raftcmd.check_archive(backupfile.read_checked(str(archive_file), "t")) == ""
    assert oct(os.stat(archive_file).st_mode & 0o777) == "0o600"  # the CA, node keys and raft key are in it
    key_file = archive_file.with_name(archive_file.name + ".unlock-key")
    assert key_file.read_text() == KEY + "\n" and oct(os.stat(key_file).st_mode & 0o777) == "0o600"
    assert KEY not in out and "unlock key saved beside it (0600)" in out and "out for" in out


def test_the_engine_starts_again_when_the_archive_fails(tmp_path):
    pool = FakePool({facts.docker_info(): (info(), 0),
                     raftcmd.NODES: (json.dumps([node()] * 3), 0),
                     raftcmd.NODES_ANSWER: ("[]", 0)},
                    {r"^systemctl stop": OK, r"^f=\$\(mktemp\)": Result("", "tar: disk full", 2),
                     r"^systemctl reset-failed docker.service": OK})
    run, out = make_run(pool, "MANAGERS=h1\n", task="swarm.backup")
    taskdef.execute(TS.backup.body.swarmbook, run, [run.settings.group("managers")[0]], (), {"to": str(tmp_path)})
    assert run.failed() == ["h1"] and "tar: disk full" in out.getvalue()
    assert [c for c, _ in pool.sent if c.startswith("systemctl reset-failed")]  # started again
    assert list(tmp_path.iterdir()) == []


class RestorePool(FakePool):
    """The engine manages a swarm again once --force-new-cluster has run."""

    def exec(self, conn, command, **kw):
        res = super().exec(conn, command, **kw)
        if "--force-new-cluster" in command:
            self.facts[raftcmd.NODES_ANSWER] = ("[]", 0)
        return res


def _restore_pool(state="inactive", manager=False):
    return RestorePool({facts.docker_info(): (info(state, manager), 0), raftcmd.NODES_ANSWER: ("[]" if manager else "", 0 if manager else 1)},
                    {r"^systemctl stop": OK, r"^rm -rf /var/lib/docker/swarm": OK, r"^systemctl reset-failed": OK,
                     r"^docker swarm init --force-new-cluster --advertise-addr 10\.0\.0\.1$": OK})


def test_restore_replaces_the_state_and_forces_a_new_cluster(tmp_path):
    path, _ = backupfile.write(tmp_path, "swarm-h1-x.tar.gz", archive())
    pool = _restore_pool()
    clock = Clock()
    run, out = make_run(pool, "MANAGERS=10.0.0.1\n", task="swarm.restore", clock=clock, sleep=clock.sleep)
    taskdef.execute(TS.restore.body.swarmbook, run, list(run.settings.group("managers")), (),
                    {"file": str(path), "yes": True})
    text = out.getvalue()
    assert "replace /var/lib/docker/swarm" in text and "force new cluster: advertise 10.0.0.1" in text
    assert [stdin for c, stdin in pool.sent if c.startswith("rm -rf")] == [archive()]
    # then the engine once more: measured, the overlay agent stays off after --force-new-cluster until then
    assert [c.split()[0] + " " + c.split()[1] for c in pool.changes()] == [
        "systemctl stop", "rm -rf", "systemctl reset-failed", "docker swarm", "systemctl stop", "systemctl reset-failed"]
    assert "restart engine: so the overlay network agent starts under the restored cluster" in text
    assert "NOT restored: standalone containers" in text


def test_restore_refuses_a_healthy_manager_without_force(tmp_path):
    path, _ = backupfile.write(tmp_path, "swarm-h1-x.tar.gz", archive())
    pool = _restore_pool("active", manager=True)
    run, out = make_run(pool, "MANAGERS=10.0.0.1\n", task="swarm.restore")
    taskdef.execute(TS.restore.body.swarmbook, run, list(run.settings.group("managers")), (),
                    {"file": str(path), "yes": True})
    assert run.failed() == ["10.0.0.1"] and "healthy swarm" in out.getvalue() and "nothing touched" in out.getvalue()
    assert not [c for c, _ in pool.sent if c.startswith("systemctl stop")]


def test_restore_refusals_before_any_host(tmp_path):
    settings = make_run(FakePool({}, {}), "MANAGERS=10.0.0.1\n")[0].settings
    path, _ = backupfile.write(tmp_path, "swarm-h1-x.tar.gz", archive())
    with pytest.raises(ConfigError, match="rerun with --yes"):
        TS._validate_restore(settings, file=str(path))
    with pytest.raises(ConfigError, match="not an IP address"):
        TS._validate_restore(settings, file=str(path), yes=True, advertise_addr="h1")
    path.write_bytes(archive() + b"x")
    with pytest.raises(ConfigError, match="is corrupted"):
        TS._validate_restore(settings, file=str(path), yes=True)
    with pytest.raises(ConfigError, match="not a folder"):
        TS._validate_backup(settings, to=str(tmp_path / "missing"))


def _autolock(tmp_path, locked, **flags):
    pool = FakePool({facts.docker_info(): (info(autolock=locked), 0)},
                    {r"^docker swarm update --autolock=true$": OK, r"^docker swarm update --autolock=false$": OK,
                     r"^docker swarm unlock-key -q$": Result(KEY + "\n", "", 0),
                     r"^docker swarm unlock-key --rotate -q$": Result(KEY + "-new\n", "", 0)})
    run, out = make_run(pool, f"MANAGERS=h1\nSWARM_KEYS_DIR={tmp_path}/keys\n", task="swarm.autolock")
    taskdef.execute(TS.autolock.body.swarmbook, run, list(run.settings.group("managers")), (), flags)
    return pool, run, out.getvalue()


def test_autolock_on_keeps_the_key_0600_and_never_prints_it(tmp_path):
    pool, run, out = _autolock(tmp_path, False, on=True)
    assert run.failed() == [] and "changed      swarm.autolock | autolock on" in out and KEY not in out, out
    key = tmp_path / "keys" / "c.key"
    assert key.read_text() == KEY + "\n" and oct(key.stat().st_mode & 0o777) == "0o600"
    pool, run, out = _autolock(tmp_path, True, on=True)  # again: nothing to change
    assert "changed" not in out and not [c for c, _ in pool.sent if "update" in c], out


def test_autolock_rotate_keeps_the_new_key_and_show_prints_it(tmp_path):
    _autolock(tmp_path, False, on=True)
    pool, run, out = _autolock(tmp_path, True, rotate=True)
    assert "rotate unlock key" in out and KEY not in out
    assert (tmp_path / "keys" / "c.key").read_text() == KEY + "-new\n"
    _, _, shown = _autolock(tmp_path, True, show=True)
    assert KEY + "-new" in shown


def test_autolock_off_and_refusals(tmp_path):
    pool, run, out = _autolock(tmp_path, True, off=True)
    assert "changed      swarm.autolock | autolock off" in out
    pool, run, out = _autolock(tmp_path, False, rotate=True)
    assert run.failed() == ["h1"] and "no unlock key to rotate" in out
    settings = make_run(FakePool({}, {}), "MANAGERS=h1\n")[0].settings
    with pytest.raises(ConfigError, match="one of --on, --off, --rotate, --show"):
        TS._validate_autolock(settings, on=True, off=True)


# --- an autolocked backup, opened here before the restore (swarmbook.raftkey) ---------------

def _swarmkit_key(kek: bytes, *, pkcs8: bool) -> tuple[str, bytes]:
    """A node key as swarmkit writes it with autolock on: encrypted with the KEK (by OpenSSL,
    through cryptography: not this module's code), its raft DEK in a NaCl-secretbox header."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from nacl.secret import SecretBox
    from nacl.utils import random as nacl_random

    pk = ec.generate_private_key(ec.SECP256R1())
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    pem = pk.private_bytes(serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(kek)).decode()
    dek, nonce = b"D" * 32, nacl_random(24)
    sealed = SecretBox(kek).encrypt(dek, nonce).ciphertext
    record = b"\x08\x01" + b"\x12" + bytes([len(sealed)]) + sealed + b"\x1a\x18" + nonce
    head, _, rest = pem.partition("\n")
    extra = f"kek-version: 7\nraft-dek: {base64.b64encode(record).decode()}\n"
    if "Proc-Type" in rest:  # legacy PEM: its own headers, then ours, then the blank line
        hdrs, _, body = rest.partition("\n\n")
        pem = f"{head}\n{hdrs}\n{extra}\n{body}"
    else:
        pem = f"{head}\n{extra}\n{rest}"
    return pem, dek


@pytest.mark.parametrize("pkcs8", [True, False], ids=["pkcs8", "legacy-pem"])
def test_a_locked_node_key_is_opened_with_the_key_of_backup_time(pkcs8):
    from cryptography.hazmat.primitives import serialization

    from swarmbook import raftkey

    kek = os.urandom(32)
    human = "SWMKEY-1-" + base64.b64encode(kek).decode().rstrip("=")
    locked, dek = _swarmkit_key(kek, pkcs8=pkcs8)
    data = tar_bytes({"swarm/raft/wal-v3-encrypted/0.wal": b"w", raftkey.NODE_KEY: locked.encode(),
                      "swarm/docker-state.json": b'{"AdvertiseAddr":"10.0.0.3:2377"}'}, gz=True)
    assert raftkey.archive_locked(data) and raftcmd.archive_origin(data) == "10.0.0.3"
    opened = raftkey.open_archive(data, human)
    assert not raftkey.archive_locked(opened) and raftcmd.check_archive(opened) == ""
    kind, headers, der = raftkey.parse_pem(raftcmd.member(opened, raftkey.NODE_KEY).decode())
    assert kind == ("PRIVATE KEY" if pkcs8 else "EC PRIVATE KEY") and "Proc-Type" not in headers
    serialization.load_der_private_key(der, password=None)  # a plain key now
    assert "kek-version" not in headers  # 0: the cluster's key (same value, any version) is taken again
    assert raftkey.parse_record(base64.b64decode(headers["raft-dek"])) == (0, dek, b"")  # not encrypted, same DEK
    assert raftcmd.member(opened, "swarm/raft/wal-v3-encrypted/0.wal") == b"w"
    other = "SWMKEY-1-" + base64.b64encode(os.urandom(32)).decode().rstrip("=")
    with pytest.raises(raftkey.WrongKey, match="not the key of backup time"):
        raftkey.open_archive(data, other)


def _locked_archive(tmp_path, with_key: str | None):
    from swarmbook import raftkey

    kek = os.urandom(32)
    locked, _ = _swarmkit_key(kek, pkcs8=True)
    data = tar_bytes({"swarm/raft/0.wal": b"w", raftkey.NODE_KEY: locked.encode(),
                      "swarm/docker-state.json": b'{"AdvertiseAddr":"10.0.0.2:2377"}'}, gz=True)
    path, _ = backupfile.write(tmp_path, "swarm-h2-x.tar.gz", data)
    human = "SWMKEY-1-" + base64.b64encode(kek).decode().rstrip("=")
    if with_key is not None:
        backupfile.write_private(f"{path}.unlock-key", (with_key or human) + "\n")
    return path, human


def test_a_locked_backup_without_its_key_or_with_another_is_refused_before_any_host(tmp_path):
    settings = make_run(FakePool({}, {}), "MANAGERS=10.0.0.1\n")[0].settings
    (tmp_path / "a").mkdir()
    path, _ = _locked_archive(tmp_path / "a", None)
    with pytest.raises(ConfigError, match=r"taken with autolock on and .*unlock-key is missing"):
        TS._validate_restore(settings, file=str(path), yes=True)
    path, _ = _locked_archive(tmp_path, "SWMKEY-1-" + base64.b64encode(os.urandom(32)).decode().rstrip("="))
    with pytest.raises(ConfigError, match="does not open the node key.*nothing was touched"):
        TS._validate_restore(settings, file=str(path), yes=True)


def test_a_locked_backup_is_restored_opened_onto_the_manager_it_came_from(tmp_path):
    from swarmbook import raftkey

    path, human = _locked_archive(tmp_path, "")
    pool = RestorePool({facts.docker_info(): (info("inactive", False), 0), raftcmd.NODES_ANSWER: ("", 1)},
                       {r"^systemctl stop": OK, r"^rm -rf /var/lib/docker/swarm": OK, r"^systemctl reset-failed": OK,
                        r"^docker swarm init --force-new-cluster --autolock --advertise-addr 10\.0\.0\.2$": OK,
                        r"^docker swarm unlock$": OK})
    clock = Clock()
    run, out = make_run(pool, "MANAGERS=10.0.0.1,10.0.0.2,10.0.0.3\n", task="swarm.restore", clock=clock,
                        sleep=clock.sleep)
    taskdef.execute(TS.restore.body.swarmbook, run, list(run.settings.group("managers")), (),
                    {"file": str(path), "yes": True})
    text = out.getvalue()
    assert run.failed() == [], text
    assert {c.host for c, _ in pool.on} == {"10.0.0.2"}  # nothing sent to the others
    (sent,) = [stdin for c, stdin in pool.sent if c.startswith("rm -rf")]
    assert not raftkey.archive_locked(sent) and raftcmd.check_archive(sent) == ""
    assert "the manager the backup was taken on" in text and "opened with the unlock key" in text
    assert human not in text
    # locked again by the restart that starts the overlay agent: unlocked with the key of backup time
    assert [stdin for c, stdin in pool.sent if c == "docker swarm unlock"] == [human]
    assert pool.changes()[-2:] == ["systemctl reset-failed docker.service 2>/dev/null; systemctl start docker.socket "
                                   "docker.service", "docker swarm unlock"]


def test_a_backup_is_refused_where_its_managers_address_would_not_be_the_restored_ones(tmp_path):
    """Measured on 28.5 (tests/lab/test_59): restored onto another machine, the manager kept the
    backed-up address in raft (ManagerStatus.Addr) whatever --force-new-cluster --advertise-addr
    said; a worker joined to it went Down for good at its next engine restart. So the machine
    the backup came from (10.0.0.9) must be a listed manager, advertising that same address."""
    data = tar_bytes({"swarm/raft/wal-v3-encrypted/0.wal": b"x" * 10, "swarm/certificates/swarm-node.crt": b"x" * 10,
                      "swarm/docker-state.json": json.dumps({"AdvertiseAddr": "10.0.0.9:2377"}).encode()}, gz=True)
    path, _ = backupfile.write(tmp_path, "swarm-h9-x.tar.gz", data)

    def refusal(managers: str, **extra) -> str:
        run, _ = make_run(FakePool({}, {}), f"MANAGERS={managers}\n", task="swarm.restore")
        targets = list(run.settings.group("managers"))
        try:
            TS._validate_restore(run.settings, file=str(path), yes=True, targets=targets, **extra)
        except ConfigError as exc:
            return str(exc)
        return ""

    lost = refusal("10.0.0.5,10.0.0.6")
    assert lost == ("this backup's manager advertised 10.0.0.9, and the restored swarm keeps that address whatever "
                    "--advertise-addr says (docker/for-linux#523): the managers listed (10.0.0.5, 10.0.0.6) do not "
                    "include 10.0.0.9; restore onto a machine at 10.0.0.9 (give the replacement that address and "
                    "list it in MANAGERS); nothing was touched")
    assert "--advertise-addr 192.168.7.5;" in refusal("10.0.0.5,10.0.0.9", advertise_addr="192.168.7.5")
    assert refusal("10.0.0.5,10.0.0.9") == "" and refusal("10.0.0.9", advertise_addr="10.0.0.9") == ""
