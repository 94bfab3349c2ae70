"""The lab's host keys, pure part: the tar that puts them into a container, the ports their
known_hosts lines name, and the lab's known_hosts text (idempotent; a lab host's old keys go)."""

from __future__ import annotations

import io
import tarfile

from swarmbook import knownhosts as kh
from swarmbook.lab import layout, sshkeys

from .test_knownhosts import ED_A, ED_B, EC_A

PUB = {"172.29.100.11": [f"ssh-ed25519 {ED_A} root@h1", f"ecdsa-sha2-nistp256 {EC_A} root@h1"],
       "172.29.100.12": [f"ssh-ed25519 {ED_B} root@h2"]}


def test_keys_tar_holds_root_owned_files_private_0600_public_0644_and_no_folder():
    data = sshkeys.keys_tar({"ssh_host_ed25519_key": b"PRIVATE", "ssh_host_ed25519_key.pub": b"PUBLIC"}, mtime=7)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"}
        assert all(m.isfile() and m.uid == 0 and m.gid == 0 and m.mtime == 7 for m in members.values())
        assert members["ssh_host_ed25519_key"].mode == 0o600 and members["ssh_host_ed25519_key.pub"].mode == 0o644
        assert tar.extractfile("ssh_host_ed25519_key").read() == b"PRIVATE"


def test_keygen_argv_makes_one_key_without_passphrase():
    from pathlib import Path

    assert sshkeys.keygen_argv(Path("/s/hostkeys/h1/ssh_host_rsa_key"), "rsa", "root@h1") == [
        "ssh-keygen", "-q", "-t", "rsa", "-N", "", "-C", "root@h1", "-f", "/s/hostkeys/h1/ssh_host_rsa_key"]


def test_ports_are_sshd_move_ports_default_and_any_recorded_port(monkeypatch):
    monkeypatch.delenv("SWARMBOOK_LAB_INSTANCE", raising=False)
    hs = layout.hosts(3)
    ports = sshkeys.ssh_ports(hs, {"172.29.100.12": 2200, "172.29.100.13": 22})
    assert ports == {"172.29.100.11": [2222], "172.29.100.12": [2200, 2222], "172.29.100.13": [2222]}


def test_known_hosts_text_names_every_host_on_its_ports_exactly():
    text = sshkeys.known_hosts_text("", PUB, {"172.29.100.11": [2222], "172.29.100.12": []})
    assert text == (
        f"{sshkeys.HEADER}\n"
        f"172.29.100.11,[172.29.100.11]:2222 ssh-ed25519 {ED_A}\n"
        f"172.29.100.11,[172.29.100.11]:2222 ecdsa-sha2-nistp256 {EC_A}\n"
        f"172.29.100.12 ssh-ed25519 {ED_B}\n")
    entries = kh.parse(text, "k")
    assert kh.judge(entries, "[172.29.100.11]:2222", "ssh-ed25519", entries[0].blob).kind == kh.KNOWN


def test_known_hosts_text_keeps_what_was_recorded_and_drops_a_lab_hosts_old_keys():
    ports = {"172.29.100.11": [2222], "172.29.100.12": []}
    first = sshkeys.known_hosts_text("", PUB, ports)
    recorded = f"[172.29.100.12]:2200 ssh-ed25519 {ED_B}\n10.9.9.9 ssh-ed25519 {ED_A}\n"
    stale = f"[172.29.100.11]:2200 ssh-ed25519 {ED_B}\n172.29.100.12 ssh-ed25519 {ED_A}\n"
    text = sshkeys.known_hosts_text(first + recorded + stale, PUB, ports)
    assert text == first + recorded  # h2's key on a new port and a stranger kept; keys h1/h2 do not have dropped
    assert sshkeys.known_hosts_text(text, PUB, ports) == text  # idempotent: a second up() writes nothing
