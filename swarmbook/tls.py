"""A small CA for the Docker TCP API: server certificates per host, one client certificate
for the operator. Kept on the operator's machine (keys 0600, folder 0700), never printed.
Made with the `cryptography` library (already a paramiko dependency)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import threading
from pathlib import Path

_LOCK = threading.Lock()
DAYS = 825


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization as s
    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization as s
    return cert.public_bytes(s.Encoding.PEM)


def _cert(subject_cn: str, key, issuer_cert, issuer_key, *, ca: bool, sans=(), client: bool = False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = dt.datetime.now(dt.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_cert.subject if issuer_cert else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=DAYS))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        alt = []
        for s in sans:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def ensure_ca(folder: Path) -> dict[str, Path]:
    """CA + operator client certificate in ``folder`` (created once). Returns their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    paths = {n: folder / f for n, f in (("ca", "ca.pem"), ("ca_key", "ca-key.pem"),
                                        ("cert", "cert.pem"), ("key", "key.pem"))}
    with _LOCK:
        if not paths["ca"].exists():
            k = _key()
            c = _cert("swarmbook docker CA", k, None, None, ca=True)
            _write(paths["ca_key"], _pem_key(k), 0o600)
            _write(paths["ca"], _pem_cert(c), 0o644)
        if not paths["cert"].exists():
            ca_key = serialization.load_pem_private_key(paths["ca_key"].read_bytes(), None)
            ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
            k = _key()
            _write(paths["key"], _pem_key(k), 0o600)
            _write(paths["cert"], _pem_cert(_cert("swarmbook operator", k, ca, ca_key, ca=False, client=True)), 0o644)
    return paths


def server_cert(folder: Path, host: str, sans: list[str]) -> tuple[str, str]:
    """(cert PEM, key PEM) for ``host`` signed by the CA in ``folder``; made once, then reused."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    paths = ensure_ca(folder)
    d = folder / "hosts" / host.replace(":", "_")
    cert_p, key_p = d / "server-cert.pem", d / "server-key.pem"
    with _LOCK:
        if not cert_p.exists():
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
            ca_key = serialization.load_pem_private_key(paths["ca_key"].read_bytes(), None)
            ca = x509.load_pem_x509_certificate(paths["ca"].read_bytes())
            k = _key()
            _write(key_p, _pem_key(k), 0o600)
            _write(cert_p, _pem_cert(_cert(host, k, ca, ca_key, ca=False, sans=sorted(set(sans)))), 0o644)
    return cert_p.read_text(), key_p.read_text()


def api_version(host: str, port: int, tls_dir: Path | None, *, client_cert: bool = True,
                timeout: float = 5) -> str:
    """GET /version on the engine's TCP API from this machine; returns the engine version.

    With ``tls_dir``: TLS verified against our CA, presenting the operator certificate
    (unless ``client_cert`` is False, to prove the engine refuses strangers).
    Raises OSError/ssl.SSLError when the engine does not answer or refuses.
    """
    import http.client
    import json
    import ssl

    if tls_dir is None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    else:
        ctx = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        if client_cert:
            ctx.load_cert_chain(str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", "/version")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        return json.loads(body).get("Version", "?")
    finally:
        conn.close()
