"""An autolocked swarm backup opened here, with the unlock key of backup time, before it is
restored (pure: bytes in, bytes out; no I/O).

Why: Docker cannot ``swarm init --force-new-cluster`` a locked manager. ``docker swarm unlock``
starts a node runner that holds the key in memory, but Init stops it and starts a new runner
with a fresh config that has no key, which finds the node's TLS key encrypted and reports the
swarm locked (moby daemon/cluster/swarm.go ``Init`` vs ``UnlockSwarm``; moby/moby#36852, open
since 2018). So swarm.restore hands the engine a swarm folder whose node key is not encrypted:
the manager starts unlocked, ``--force-new-cluster`` works, and once it leads the cluster
(autolock still on in the restored cluster spec, with the same key) swarmkit encrypts the key
on disk again.

What is opened (swarmkit ca/keyreadwriter.go, manager/deks.go, manager/encryption):
``swarm/certificates/swarm-node.key`` is a PEM block encrypted with the key-encrypting key
(the raw bytes behind ``SWMKEY-1-<base64>``): PKCS#8 ``ENCRYPTED PRIVATE KEY`` or a legacy
``Proc-Type: 4,ENCRYPTED`` block (AES-256-CBC, OpenSSL's MD5 key derivation); its
``raft-dek`` / ``raft-dek-pending`` headers are base64 protobuf ``MaybeEncryptedRecord``s
(algorithm 1: NaCl secretbox with that key) and ``kek-version`` names the key's version.
Opened, the block holds the plain key, records with algorithm 0 (not encrypted) and no
version, as swarmkit writes them for a node that has never been locked.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile

NODE_KEY = "swarm/certificates/swarm-node.key"
PREFIX = "SWMKEY-1-"
_DEK_HEADERS = ("raft-dek", "raft-dek-pending")
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----\n(.*?)-----END \1-----", re.S)


class WrongKey(ValueError):
    """The key does not open this archive (wrong key, or a format this module does not know)."""


def kek(human: str) -> bytes:
    """The raw key-encrypting key behind ``SWMKEY-1-...`` (swarmkit's HumanReadableKey)."""
    human = human.strip()
    if not human.startswith(PREFIX):
        raise WrongKey("not a swarm unlock key (SWMKEY-1-...)")
    body = human[len(PREFIX):]
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except ValueError:
        raise WrongKey("not a swarm unlock key (bad base64)") from None


# --- PEM as Go's encoding/pem writes it: headers, a blank line, base64 ----------------------

def parse_pem(text: str) -> tuple[str, dict[str, str], bytes]:
    m = _PEM.search(text)
    if not m:
        raise WrongKey("the node key is not a PEM block")
    kind, inner = m.group(1), m.group(2)
    headers: dict[str, str] = {}
    head, sep, body = inner.partition("\n\n")
    if sep and ":" in head.splitlines()[0]:
        for line in head.splitlines():
            k, _, v = line.partition(":")
            headers[k.strip()] = v.strip()
    else:
        body = inner
    return kind, headers, base64.b64decode("".join(body.split()))


def format_pem(kind: str, headers: dict[str, str], der: bytes) -> str:
    lines = [f"-----BEGIN {kind}-----"]
    if headers:
        lines += [f"{k}: {v}" for k, v in sorted(headers.items())] + [""]
    b64 = base64.b64encode(der).decode()
    lines += [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "\n".join(lines + [f"-----END {kind}-----", ""])


def is_locked(headers: dict[str, str], kind: str) -> bool:
    return kind == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in headers.get("Proc-Type", "")


# --- protobuf MaybeEncryptedRecord {1: algorithm (varint), 2: data, 3: nonce} ---------------

def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise WrongKey("truncated record")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            return value, i


def parse_record(buf: bytes) -> tuple[int, bytes, bytes]:
    fields: dict[int, int | bytes] = {}
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            fields[num], i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            fields[num], i = buf[i:i + n], i + n
        else:
            raise WrongKey(f"unexpected protobuf wire type {wire}")
    return int(fields.get(1, 0)), bytes(fields.get(2, b"")), bytes(fields.get(3, b""))


def plain_record(data: bytes) -> bytes:
    """A NotEncrypted record (algorithm 0 is proto3's default: not written)."""
    n, out = len(data), bytearray(b"\x12")
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            break
    return bytes(out) + data


def _open_record(value: str, key: bytes) -> str:
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    algorithm, data, nonce = parse_record(base64.b64decode(value))
    if algorithm == 0:
        return value
    if algorithm != 1:
        raise WrongKey(f"raft key encrypted with algorithm {algorithm} (FIPS/fernet): not supported here")
    try:
        return base64.b64encode(plain_record(SecretBox(key).decrypt(data, nonce))).decode()
    except CryptoError:
        raise WrongKey("the unlock key does not open the raft key (not the key of backup time?)") from None


def _open_der(kind: str, headers: dict[str, str], der: bytes, key: bytes) -> tuple[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    wrong = WrongKey("the unlock key does not open the node key (not the key of backup time?)")
    if kind == "ENCRYPTED PRIVATE KEY":
        try:
            pk = serialization.load_der_private_key(der, password=key)
        except (ValueError, TypeError):
            raise wrong from None
        return "PRIVATE KEY", pk.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())
    cipher, _, iv_hex = headers.get("DEK-Info", "").partition(",")
    if cipher != "AES-256-CBC":
        raise WrongKey(f"node key encrypted with {cipher or 'an unknown cipher'}: not supported here")
    iv = bytes.fromhex(iv_hex)
    derived, block = b"", b""
    while len(derived) < 32:  # OpenSSL EVP_BytesToKey(MD5, salt = the IV's first 8 bytes), as Go's x509
        block = hashlib.md5(block + key + iv[:8]).digest()
        derived += block
    dec = Cipher(algorithms.AES(derived[:32]), modes.CBC(iv)).decryptor()
    plain = dec.update(der) + dec.finalize()
    pad = plain[-1] if plain else 0
    if not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise wrong
    plain = plain[:-pad]
    try:
        serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError):
        raise wrong from None
    return kind, plain


def open_node_key(pem_text: str, human_key: str) -> str:
    """The node key PEM with the key and its raft DEK headers no longer encrypted."""
    kind, headers, der = parse_pem(pem_text)
    if not is_locked(headers, kind):
        return pem_text
    key = kek(human_key)
    kind, der = _open_der(kind, headers, der, key)
    # no kek-version either: swarmkit refuses a KEK of the same version with another value
    # ("candidate KEK has the same version as the current KEK, but a different KEK value", seen
    # on 28.5), and version 0 is "unlocked, older than any key of the cluster", so the restored
    # manager takes the cluster's key (the same) and encrypts its node key again
    out = {k: v for k, v in headers.items() if k.lower() not in ("proc-type", "dek-info", "kek-version")}
    for h in _DEK_HEADERS:
        if h in out:
            out[h] = _open_record(out[h], key)
    return format_pem(kind, out, der)


def _members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        return [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]


def archive_locked(data: bytes) -> bool:
    """Is the archive's node key encrypted (autolock was on at backup time)?"""
    from .raftcmd import member

    body = member(data, NODE_KEY)
    if body is None:
        return False
    kind, headers, _ = parse_pem(body.decode())
    return is_locked(headers, kind)


def open_archive(data: bytes, human_key: str) -> bytes:
    """The archive (gzip'ed tar) with its node key opened; every other member as it was."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as out:
        for m, body in _members(data):
            if m.name == NODE_KEY and body is not None:
                body = open_node_key(body.decode(), human_key).encode()
                m.size = len(body)
            out.addfile(m, io.BytesIO(body) if body is not None else None)
    return buf.getvalue()
