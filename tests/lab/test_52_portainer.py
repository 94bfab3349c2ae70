"""portainer.up / backup / restore on the real lab swarm, against a Portainer stand-in.

The stand-in (swarmbook-standin/portainer, busybox httpd) keeps a file in /data and answers on
9000; the swarm service, node label, volume, docker.sock mount, scale 0/1, the tar of the real
volume (through PORTAINER_HELPER_IMAGE, default nginx:latest from the lab mirror), the checksums
and the restore are all real. NOT proved: that real Portainer's database
survives a live tar (the runbook tars it live too; `portainer.backup --stop` copies it stopped)
or that it manages the swarm.
"""

import hashlib
import urllib.request

import pytest

from .sb import sb
from .test_50_gitlab_runner import prepared, run

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(lab):
    return prepared(lab)


def test_up_pins_to_labelled_manager_then_nothing_to_do(cluster):
    lab = cluster
    out = sb(lab, "portainer.up")
    assert out.rc == 0, out.stdout + out.stderr
    m = lab.hosts[0]
    spec = run(lab, m, "docker service inspect portainer --format "
                       "'{{json .Spec.TaskTemplate.Placement.Constraints}} {{range .Spec.TaskTemplate.ContainerSpec.Mounts}}"
                       "{{.Source}}:{{.Target}} {{end}}'").stdout
    assert "node.labels.portainer == true" in spec and "node.role == manager" in spec
    assert "portainer_data:/data" in spec and "/var/run/docker.sock:/var/run/docker.sock" in spec
    assert run(lab, m, "docker node inspect self --format '{{index .Spec.Labels \"portainer\"}}'").stdout.strip() == "true"
    with urllib.request.urlopen(f"http://{m.addr}:9000/api/status", timeout=5) as r:
        assert b"swarmbook-standin" in r.read()
    again = sb(lab, "portainer.up")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_backup_restore_round_trip_and_corrupted_backup_refused(cluster, tmp_path):
    lab = cluster
    m = lab.hosts[0]
    marker = "marker-" + hashlib.sha256(str(tmp_path).encode()).hexdigest()[:8]
    run(lab, m, f"docker run --rm -v portainer_data:/data busybox:latest sh -c 'echo {marker} > /data/marker.txt'")
    out = sb(lab, "portainer.backup", "--to", str(tmp_path))
    assert out.rc == 0 and out.changed == 0, out.stdout + out.stderr
    (tar,) = tmp_path.glob("portainer-*.tar")
    side = tmp_path / (tar.name + ".sha256")
    assert side.read_text() == f"{hashlib.sha256(tar.read_bytes()).hexdigest()}  {tar.name}\n"
    # a second backup is a new file; the first is never overwritten
    first = tar.read_bytes()
    import time
    time.sleep(1.1)
    # (this one with --stop: Portainer is scaled to 0 for the copy and runs again afterwards)
    stopped = sb(lab, "portainer.backup", "--to", str(tmp_path), "--stop")
    assert stopped.rc == 0, stopped.stdout + stopped.stderr
    assert [e["step"] for e in stopped.steps("changed")] == ["stop portainer for the copy (scale 0)",
                                                             "start portainer (scale 1)"]
    assert run(lab, m, "docker service ls --filter name=portainer --format '{{.Replicas}}'").stdout.split() == ["1/1"]
    assert len(list(tmp_path.glob("portainer-*.tar"))) == 2 and tar.read_bytes() == first
    assert all(marker.encode() in t.read_bytes() for t in tmp_path.glob("portainer-*.tar"))

    # destroy the volume, then restore it
    run(lab, m, "docker service scale --detach=false portainer=0 >/dev/null && "
                "for i in $(seq 30); do docker ps -q --filter name=portainer | grep -q . || break; sleep 1; done; "
                "docker ps -aq --filter label=com.docker.swarm.service.name=portainer | xargs -r docker rm -f >/dev/null; "
                "docker volume rm portainer_data")  # stopped task containers still hold the volume
    # no volume: backup refuses, writes nothing here and does not create an empty volume there
    before = sorted(tmp_path.iterdir())
    refused = sb(lab, "portainer.backup", "--to", str(tmp_path))
    reasons = [e["reason"] for e in refused.failed]
    assert refused.rc == 1 and any("no volume portainer_data on" in r for r in reasons), refused.stdout + refused.stderr
    assert sorted(tmp_path.iterdir()) == before
    assert run(lab, m, "docker volume inspect portainer_data", check=False).returncode != 0
    assert sb(lab, "portainer.restore", str(tar), json_lines=False).rc == 2  # --yes missing
    out = sb(lab, "portainer.restore", str(tar), "--yes")
    assert out.rc == 0, out.stdout + out.stderr
    assert any(e["step"] == "verified" for e in out.steps("ok"))
    got = run(lab, m, "docker run --rm -v portainer_data:/data:ro busybox:latest cat /data/marker.txt").stdout.strip()
    assert got == marker
    assert run(lab, m, "docker service ls --filter name=portainer --format '{{.Replicas}}'").stdout.strip() == "1/1"
    again = sb(lab, "portainer.restore", str(tar), "--yes")
    assert again.rc == 0 and again.changed == 0, again.stdout

    bad = tmp_path / "corrupt.tar"
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    bad.write_bytes(bytes(data))
    (tmp_path / "corrupt.tar.sha256").write_text(side.read_text().replace(tar.name, bad.name))
    before = run(lab, m, "docker service inspect portainer --format '{{.Version.Index}}'").stdout
    out = sb(lab, "portainer.restore", str(bad), "--yes", json_lines=False)
    assert out.rc == 2 and "is corrupted" in out.stderr and "nothing was touched" in out.stderr, out.stderr
    assert run(lab, m, "docker service inspect portainer --format '{{.Version.Index}}'").stdout == before
