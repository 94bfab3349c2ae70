"""A real load balancer in front of the lab's nodes: Debian's nginx, as the runbook's SLB / Kong
sits in front of a production cluster, so "no request lost" is measured where clients are.

``up(port)`` runs nginx (the lab's ``library/nginx`` image, Debian's package) as a container on
the lab network at ``.5`` of its subnet, proxying ``:8080`` to every host's published ``port``
with what a production LB is set to do: passive health (an upstream that fails is left out for
a few seconds) and a retry on the next upstream when one refuses, resets or times out, for
every request (GET and the rest). The container carries the lab's labels, so ``lab.down``
removes it; ``down()`` removes it alone.
"""

from __future__ import annotations

from pathlib import Path

from . import layout, sh
from .layout import LabHost

LISTEN = 8080
IMAGE = "swarmbook-lab-seed/library-nginx:latest"  # Debian's nginx, built by the lab's platform images


def name(k: int | None = None) -> str:
    return f"{layout.network(k)}-lb"


def addr(k: int | None = None) -> str:
    return layout.gateway(k).rsplit(".", 1)[0] + ".5"


def config(hosts: list[LabHost], port: int) -> str:
    """nginx's server block: every host an upstream, passive health, retry on the next one."""
    servers = "\n".join(f"    server {h.addr}:{port} max_fails=1 fail_timeout=3s;" for h in hosts)
    return (f"upstream nodes {{\n{servers}\n}}\n"
            f"server {{\n"
            f"    listen {LISTEN};\n"
            f"    location / {{\n"
            f"        proxy_pass http://nodes;\n"
            f"        proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;\n"
            f"        proxy_next_upstream_tries {len(hosts)};\n"
            f"        proxy_connect_timeout 1s;\n"
            f"        proxy_read_timeout 5s;\n"
            f"    }}\n"
            f"}}\n")


def up(state: Path, hosts: list[LabHost], port: int) -> str:
    """Run (or re-run with a new config) the LB; returns its URL."""
    conf = state / "lb.conf"
    text = config(hosts, port)
    current = sh.run(["docker", "inspect", "-f", "{{.State.Running}}", name()], check=False).stdout.strip()
    if current == "true" and conf.is_file() and conf.read_text() == text:
        return url()
    down()
    conf.write_text(text)
    conf.chmod(0o644)
    sid = layout.state_id(state)
    sh.run(["docker", "run", "-d", "--name", name(), "--network", layout.network(), "--ip", addr(),
            "--label", f"{layout.LABEL}=1", "--label", f"{layout.STATE_LABEL}={sid}",
            "--label", f"{layout.DIR_LABEL}={state}", "--hostname", "lb",
            "-v", f"{conf}:/etc/nginx/conf.d/swarmbook-lb.conf:ro", IMAGE])
    return url()


def url(k: int | None = None) -> str:
    return f"http://{addr(k)}:{LISTEN}/"


def down() -> None:
    sh.run(["docker", "rm", "-f", name()], check=False)
