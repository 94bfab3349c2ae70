"""library/nginx:latest of the lab: real nginx from Debian's package, pulled as `nginx:latest`
through the lab mirror like a Docker Hub pull, in the official image's shape (foreground nginx
on :80). It is also the runbook's helper image for Portainer's volume, so tar and sha256sum.
NOT proved: the official image's other features (/docker-entrypoint.d, envsubst templates), its
default page path (/usr/share/nginx/html; Debian serves /var/www/html).
"""

import time

import pytest

from .test_50_gitlab_runner import prepared, run

pytestmark = pytest.mark.lab
NAME = "swarmbook-test-nginx"


@pytest.fixture(scope="module")
def cluster(lab):
    return prepared(lab)


def test_nginx_latest_serves_port_80_in_the_foreground_and_has_tar_and_sha256sum(cluster):
    lab = cluster
    h = lab.hosts[1]
    run(lab, h, f"docker rm -f {NAME} >/dev/null 2>&1; docker rmi -f nginx:latest >/dev/null 2>&1; true")
    assert "nginx:latest" in run(lab, h, "docker pull -q nginx:latest").stdout  # Docker Hub's name, via the mirror
    run(lab, h, f"docker run -d --name {NAME} nginx:latest")
    try:
        addr = run(lab, h, f"docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}}"
                           f"{{{{end}}}}' {NAME}").stdout.strip()
        page = ""
        for _ in range(20):
            page = run(lab, h, f"curl -sS -m 3 http://{addr}:80/", check=False).stdout
            if page:
                break
            time.sleep(0.5)
        assert "<title>Welcome to nginx!</title>" in page
        # PID 1 is nginx itself, not a daemon that forked away
        assert run(lab, h, f"docker exec {NAME} cat /proc/1/cmdline").stdout.startswith(
            "nginx: master process nginx -g daemon off;")
        assert run(lab, h, f"docker inspect -f '{{{{.State.Running}}}}' {NAME}").stdout.strip() == "true"
    finally:
        run(lab, h, f"docker rm -f {NAME} >/dev/null 2>&1; true")
    tools = run(lab, h, "docker run --rm nginx:latest sh -c 'tar --version; sha256sum --version'").stdout
    assert "GNU tar" in tools and "sha256sum (GNU coreutils)" in tools
    # what the Portainer helper does with them: a tar of a volume's files, and its checksum
    out = run(lab, h, "docker run --rm nginx:latest sh -c "
                      "'mkdir -p /data && echo hi > /data/f && tar -C / -cf - data | tar -tf - && "
                      "printf hi | sha256sum'").stdout.split()
    assert out[:2] == ["data/", "data/f"]
    assert out[2] == "8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4"
