"""docker.tcp on real lab engines: TLS on 2376 with client certificates; strangers refused."""

import os
import re
import ssl
import subprocess

import pytest

from swarmbook import tls

from .sb import recorded_port, sb, ssh

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def tls_env(lab, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    path = d / "hosts.env"
    text = lab.hosts_env.read_text()
    text = re.sub(r"(?m)^DOCKER_TLS_DIR=.*\n", "", text) + f"DOCKER_TLS_DIR={d / 'certs'}\n"
    path.write_text(text)
    os.chmod(path, 0o600)
    return path, d / "certs"


def test_tls_api_needs_the_client_certificate(lab, tls_env):
    path, certs = tls_env
    assert sb(lab, "docker.install", hosts_env=str(path)).rc == 0
    out = sb(lab, "docker.tcp", hosts_env=str(path))
    assert out.rc == 0, out.stdout + out.stderr
    assert oct(os.stat(certs / "key.pem").st_mode & 0o777) == "0o600"
    for h in lab.hosts:
        assert tls.api_version(h.addr, 2376, certs)  # our CA, our client certificate
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            tls.api_version(h.addr, 2376, certs, client_cert=False)
        assert ssh(lab, h, "systemctl is-active docker").stdout.strip() == "active"
        assert "fd://" in ssh(lab, h, "cat /etc/systemd/system/docker.service.d/swarmbook-tcp.conf").stdout
    # the real docker CLI, as an operator would use it
    h = lab.hosts[0]
    p = subprocess.run(["docker", "--tlsverify", f"--tlscacert={certs}/ca.pem", f"--tlscert={certs}/cert.pem",
                        f"--tlskey={certs}/key.pem", "-H", f"tcp://{h.addr}:2376", "version", "--format",
                        "{{.Server.Version}}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip(), p.stderr
    again = sb(lab, "docker.tcp", hosts_env=str(path))
    assert again.rc == 0 and again.changed == 0, again.stdout
    # a run killed between writing the drop-in and restarting: files right, engine not restarted
    ssh(lab, h, "sleep 1; touch /etc/systemd/system/docker.service.d/swarmbook-tcp.conf")
    healed = sb(lab, "docker.tcp", hosts_env=str(path))
    assert healed.rc == 0 and [s["host"] for s in healed.steps("changed")] == [h.addr], healed.stdout
    assert "not applied" in healed.steps("changed")[0]["reason"]
    assert sb(lab, "docker.tcp", hosts_env=str(path)).changed == 0


def test_insecure_needs_an_explicit_bind_address(lab, tls_env):
    out = sb(lab, "docker.tcp", "--insecure", hosts_env=str(tls_env[0]), json_lines=False)
    assert out.rc == 2 and "--insecure needs --bind" in out.stderr


def test_insecure_plain_tcp_answers_on_this_engine_then_tls_comes_back(lab, tls_env):
    """The runbook's `-H tcp://0.0.0.0:2375`, as docker.tcp --insecure makes it (one host, its own
    address): each engine starts with it (Docker 26+ only with TLS disabled explicitly, which the
    drop-in says), the plain API answers from this machine, and TLS comes back afterwards."""
    path, certs = tls_env
    for h in lab.hosts:
        hosts = f"{h.addr}:{recorded_port(lab, h.addr)}"
        out = sb(lab, "-i", str(lab.key), "-H", hosts, "docker.tcp", "--insecure", "--bind", h.addr,
                 tool="fab", hosts_env=str(path))
        assert out.rc == 0, out.stdout + out.stderr
        assert "--tls=false" in ssh(lab, h, "cat /etc/systemd/system/docker.service.d/swarmbook-tcp.conf").stdout
        assert tls.api_version(h.addr, 2375, None) == ssh(
            lab, h, "docker version --format '{{.Server.Version}}'").stdout.strip()
    back = sb(lab, "docker.tcp", hosts_env=str(path))
    assert back.rc == 0, back.stdout + back.stderr
    for h in lab.hosts:
        assert tls.api_version(h.addr, 2376, certs)
        with pytest.raises(OSError):
            tls.api_version(h.addr, 2375, None, timeout=2)
