"""known_hosts, the pure part: parsing, matching (plain, [host]:port, patterns, hashed),
fingerprints, the verdict on an offered key and the one-line refusal. Hashes and fingerprints
are checked against OpenSSH's own ssh-keygen where it is installed."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest

from swarmbook import knownhosts as kh

ED_A = "AAAAC3NzaC1lZDI1NTE5AAAAIE8rnw4WdRJFPteh8pWp8J8LR+9DLgNaZM8tHgrxoRGe"
ED_B = "AAAAC3NzaC1lZDI1NTE5AAAAIHIwjAz5qk56baXKHWkfSznnrqxVXg95M6+y3Zz3zqqu"
EC_A = ("AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGQxB432mUZDq7QdFHEMom8F+avSSf0+MGxYQoRm5Z+O3S"
        "THepjGqRjYMldN8GLuk/k83Ajj95d6DoalJswxVqk=")
BLOB_A, BLOB_B, BLOB_EC = (base64.b64decode(x) for x in (ED_A, ED_B, EC_A))


def test_a_host_is_named_as_openssh_names_it():
    assert kh.host_name("10.0.1.11", 22) == "10.0.1.11"
    assert kh.host_name("10.0.1.11", 2222) == "[10.0.1.11]:2222"
    assert kh.host_name("fd00::1", 2222) == "[fd00::1]:2222"


def test_parse_keeps_key_lines_with_their_line_numbers_and_skips_the_rest():
    text = (f"# a comment\n\n10.0.1.11 ssh-ed25519 {ED_A}\n"
            f"@revoked * ssh-ed25519 {ED_B}\n"
            "short line\n"
            "10.0.1.12 ssh-ed25519 not*base64\n"
            f"@cert-authority *.lab ssh-ed25519 {ED_B} ca\n"
            f"10.0.1.13,[10.0.1.13]:2222\tssh-ed25519 {ED_B} root@h3\n")
    entries = kh.parse(text, "/k")
    assert [(e.line, e.names, e.marker) for e in entries] == [
        (3, ("10.0.1.11",), ""), (4, ("*",), "@revoked"), (7, ("*.lab",), "@cert-authority"),
        (8, ("10.0.1.13", "[10.0.1.13]:2222"), "")]
    assert entries[0].blob == BLOB_A and entries[0].keytype == "ssh-ed25519" and entries[0].path == "/k"


@pytest.mark.parametrize("names, name, hit", [
    (("10.0.1.11",), "10.0.1.11", True),
    (("10.0.1.11",), "10.0.1.1", False),
    (("10.0.1.11",), "[10.0.1.11]:2222", False),  # another port is another name
    (("[10.0.1.11]:2222",), "[10.0.1.11]:2222", True),  # brackets are literal, not a class
    (("[10.0.1.11]:2222",), "1", False),
    (("*.lab", "!bad.lab"), "h1.lab", True),
    (("*.lab", "!bad.lab"), "bad.lab", False),  # a matching negation wins
    (("h?",), "H2", True),  # without case
    (("h?",), "h22", False),
])
def test_names_host_follows_openssh_patterns(names, name, hit):
    assert kh.names_host(names, name) is hit


def test_a_hashed_name_matches_only_its_host():
    field = kh.hash_name("[10.0.1.11]:2222", salt=b"s" * 20)
    assert field.startswith("|1|") and "10.0.1.11" not in field
    assert kh.names_host((field,), "[10.0.1.11]:2222")
    assert not kh.names_host((field,), "10.0.1.11")
    assert not kh.names_host(("|1|garbage",), "10.0.1.11")


@pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="OpenSSH's ssh-keygen not installed")
def test_hashes_and_fingerprints_agree_with_ssh_keygen(tmp_path):
    f = tmp_path / "known_hosts"
    f.write_text(f"[10.0.1.11]:2222 ssh-ed25519 {ED_A}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(f)], check=True, capture_output=True)
    (entry,) = kh.parse(f.read_text(), str(f))
    assert entry.hashed and kh.names_host(entry.names, "[10.0.1.11]:2222")  # OpenSSH's own hash
    printed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(f)], check=True,
                             capture_output=True, text=True).stdout.split()[1]
    assert kh.fingerprint(BLOB_A) == printed
    ours = tmp_path / "ours"
    ours.write_text(kh.entry_line("10.0.1.12", "ssh-ed25519", BLOB_B, hashed=True))
    found = subprocess.run(["ssh-keygen", "-F", "10.0.1.12", "-f", str(ours)], capture_output=True, text=True)
    assert found.returncode == 0 and ED_B in found.stdout  # ssh finds what we hashed


def _entries(text: str) -> list[kh.Entry]:
    return kh.parse(text, "/home/op/.ssh/known_hosts")


def test_judge_known_new_changed_revoked():
    entries = _entries(f"10.0.1.11 ssh-ed25519 {ED_A}\n10.0.1.11 ecdsa-sha2-nistp256 {EC_A}\n"
                       f"@revoked * ssh-ed25519 {ED_B}\n")
    assert kh.judge(entries, "10.0.1.11", "ssh-ed25519", BLOB_A).kind == kh.KNOWN
    assert kh.judge(entries, "10.0.1.11", "ecdsa-sha2-nistp256", BLOB_EC).kind == kh.KNOWN
    assert kh.judge(entries, "10.0.1.99", "ssh-ed25519", BLOB_A).kind == kh.NEW
    assert kh.judge(entries, "[10.0.1.11]:2222", "ssh-ed25519", BLOB_A).kind == kh.NEW
    changed = kh.judge(entries[:2], "10.0.1.11", "ssh-ed25519", BLOB_B)
    assert changed.kind == kh.CHANGED and changed.entry.line == 1  # the recorded key of the same type
    assert kh.judge(entries, "10.0.1.11", "ssh-ed25519", BLOB_B).kind == kh.REVOKED


def test_a_key_on_record_in_any_file_is_trusted_as_ssh_does():
    stale = kh.parse(f"10.0.1.11 ssh-ed25519 {ED_A}\n", "/home/op/.ssh/known_hosts")
    lab = kh.parse(f"10.0.1.11 ssh-ed25519 {ED_B}\n", "/lab/known_hosts")
    assert kh.judge(stale + lab, "10.0.1.11", "ssh-ed25519", BLOB_B).kind == kh.KNOWN
    assert kh.judge(stale, "10.0.1.11", "ssh-ed25519", BLOB_B).kind == kh.CHANGED


def test_only_another_type_on_record_is_a_changed_key():
    """The transport asks for the recorded type first; a host that no longer has it is refused."""
    entries = _entries(f"10.0.1.11 ecdsa-sha2-nistp256 {EC_A}\n")
    v = kh.judge(entries, "10.0.1.11", "ssh-ed25519", BLOB_A)
    assert v.kind == kh.CHANGED and v.entry.keytype == "ecdsa-sha2-nistp256"


def test_prefer_asks_for_the_recorded_types_first():
    offered = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
    assert kh.prefer(offered, ["ecdsa-sha2-nistp256"]) == [
        "ecdsa-sha2-nistp256", "ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"]
    assert kh.prefer(offered, ["ssh-rsa"]) == ["rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519", "ecdsa-sha2-nistp256"]
    assert kh.prefer(offered, ["sk-ssh-ed25519@openssh.com"]) == offered  # unknown to paramiko: as offered
    assert kh.prefer(offered, []) == offered
    entries = _entries(f"x ssh-ed25519 {ED_A}\n10.0.1.11 ecdsa-sha2-nistp256 {EC_A}\n10.0.1.11 ssh-ed25519 {ED_A}\n")
    assert kh.recorded_types(entries, "10.0.1.11") == ["ecdsa-sha2-nistp256", "ssh-ed25519"]


def test_the_refusal_is_one_line_with_host_both_fingerprints_file_line_and_fix():
    entries = _entries(f"# mine\n[10.0.1.12]:2222 ssh-ed25519 {ED_A}\n")
    v = kh.judge(entries, "[10.0.1.12]:2222", "ssh-ed25519", BLOB_B)
    line = kh.refusal("root@10.0.1.12:2222", "[10.0.1.12]:2222", "ssh-ed25519", BLOB_B, v)
    assert "\n" not in line
    assert line == (
        f"host key of root@10.0.1.12:2222 has changed: offered ssh-ed25519 {kh.fingerprint(BLOB_B)}, "
        f"recorded ssh-ed25519 {kh.fingerprint(BLOB_A)} in /home/op/.ssh/known_hosts line 2; refused, "
        "nothing sent. If the host's key changed legitimately (reinstalled), remove the old key and run "
        "again: ssh-keygen -R '[10.0.1.12]:2222' -f /home/op/.ssh/known_hosts")
    assert kh.fingerprint(BLOB_A).startswith("SHA256:") and not kh.fingerprint(BLOB_A).endswith("=")


def test_the_fix_names_every_file_that_holds_an_old_key_quoted():
    stale = (kh.parse(f"h1 ssh-ed25519 {ED_A}\n", "/home/op/.ssh/known_hosts")
             + kh.parse(f"h1 ssh-ed25519 {ED_A}\n", "/srv/it's here/known_hosts"))
    v = kh.judge(stale, "h1", "ssh-ed25519", BLOB_B)
    line = kh.refusal("root@h1:22", "h1", "ssh-ed25519", BLOB_B, v)
    assert line.endswith("ssh-keygen -R h1 -f /home/op/.ssh/known_hosts; "
                         "ssh-keygen -R h1 -f '/srv/it'\"'\"'s here/known_hosts'")


def test_a_revoked_key_is_refused_naming_where_it_is_marked():
    entries = _entries(f"@revoked * ssh-ed25519 {ED_B}\n")
    v = kh.judge(entries, "h1", "ssh-ed25519", BLOB_B)
    line = kh.refusal("root@h1:22", "h1", "ssh-ed25519", BLOB_B, v)
    assert line.startswith("host key of root@h1:22 is revoked:") and "known_hosts line 1" in line


def test_entry_line_round_trips():
    line = kh.entry_line("[h1]:2222", "ssh-ed25519", BLOB_A)
    assert line == f"[h1]:2222 ssh-ed25519 {ED_A}\n"
    (e,) = kh.parse(line, "f")
    assert kh.judge([e], "[h1]:2222", "ssh-ed25519", BLOB_A).kind == kh.KNOWN
    (h,) = kh.parse(kh.entry_line("[h1]:2222", "ssh-ed25519", BLOB_A, hashed=True), "f")
    assert h.hashed and kh.judge([h], "[h1]:2222", "ssh-ed25519", BLOB_A).kind == kh.KNOWN
