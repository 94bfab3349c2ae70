"""inv doctor on the real lab: a table and an exit code; a filtered swarm port is a failure;
the cluster as its manager sees it (quorum, node certificates, a service that cannot converge
with its task error, a worker whose engine is stopped shown down); swarm.status with no manager
answering fails in one line. Every test leaves the cluster as it found it."""

import datetime as dt
import functools
import json
import re
import socket

import pytest

from .sb import sb, ssh, until

pytestmark = pytest.mark.lab

CERT = "/var/lib/docker/swarm/certificates/swarm-node.crt"


@pytest.fixture(scope="module")
def swarm(lab):
    """The lab's swarm (made by test_20 in a full run; made here when this file runs alone)."""
    for task in ("docker.install", "swarm.init"):
        out = sb(lab, task)
        assert out.rc == 0, (task, out.failed)
    # a healthy cluster to start from: tasks an earlier file moved (node.drain/activate, a
    # rejoin) count as running only once their healthcheck passes
    _until("every service running all its tasks",
           lambda: [r.split()[0] for r in ssh(lab, lab.hosts[0], "docker service ls --format '{{.Replicas}}'")
                    .stdout.splitlines() if r.strip()],
           lambda reps: all(r.split("/")[0] == r.split("/")[1] for r in reps), timeout=180)
    return lab


def managers(lab) -> list[str]:
    lines = ssh(lab, lab.hosts[0], "docker node ls --format '{{.Hostname}} {{.ManagerStatus}}'").stdout.splitlines()
    return [ln.split()[0] for ln in lines if len(ln.split()) > 1]


def steps(out, step: str) -> list[dict]:
    return [e for e in out.steps() if e["step"] == step]


_until = functools.partial(until, timeout=90)


def test_doctor_passes_on_the_lab_and_warns_about_ipvs(lab, swarm):
    out = sb(lab, "doctor", json_lines=False)
    assert out.rc == 0, out.stdout + out.stderr
    for h in lab.hosts:
        assert h.addr in out.stdout
    assert "ipvs" in out.stdout and "WARN" in out.stdout  # this kernel has no IPVS
    assert "engine" in out.stdout and "clock" in out.stdout and "disk" in out.stdout
    recap = out.stdout[out.stdout.index("RECAP doctor"):]
    assert "(no hosts)" not in recap
    rows = {r.split()[0]: r.split()[1:] for r in recap.splitlines()[2:] if r.strip()}
    for h in lab.hosts:  # every host's checks counted: ssh ... node cert, none failed
        assert int(rows[h.addr][0]) >= 8 and rows[h.addr][2] == "0", recap
    assert rows["(cluster)"][2] == "0", recap


def test_doctor_reports_quorum_and_each_nodes_certificate_days(lab, swarm):
    from cryptography import x509

    out = sb(lab, "doctor")
    assert out.rc == 0, out.failed
    n = len(managers(lab))
    need = n // 2 + 1
    [quorum] = steps(out, "doctor quorum")
    assert quorum["status"] == "ok" and quorum["host"] == "(cluster)"
    assert quorum["reason"].startswith(f"{n} of {n} managers reachable, quorum {need}: may lose {n - need} more")
    certs = {e["host"]: e["reason"] for e in steps(out, "doctor node cert")}
    assert set(certs) == {h.addr for h in lab.hosts}
    for h in lab.hosts:  # the days left on the certificate the node really holds
        pem = ssh(lab, h, f"cat {CERT}").stdout
        end = x509.load_pem_x509_certificate(pem.encode()).not_valid_after_utc
        days = (end - dt.datetime.now(dt.timezone.utc)).total_seconds() / 86400
        shown = int(re.match(r"(\d+) days left \(expires (\S+)\)", certs[h.addr]).group(1))
        assert abs(shown - days) <= 1 and 30 < shown <= 90, (certs[h.addr], days)
        assert f"expires {end:%Y-%m-%d}" in certs[h.addr] and "90-day certificates" in certs[h.addr]


def test_services_that_cannot_converge_are_reported_with_their_task_errors(lab, swarm):
    h1 = lab.hosts[0]
    ssh(lab, h1, "docker service create --detach --no-resolve-image --name doctor-noimage "
                 "registry.lab:5000/doctor/nope:latest")
    ssh(lab, h1, "docker service create --detach --name doctor-noplace --constraint 'node.labels.doctor-nowhere==true' "
                 "registry.lab:5000/library/busybox:latest sleep 1d")
    try:
        def probe():  # doctor's findings, and the task errors the docker CLI shows (another path)
            failed = {e["reason"].split(":")[0]: e for e in sb(lab, "doctor").failed if e["step"] == "doctor service"}
            errors = ssh(lab, h1, "docker service ps --no-trunc --format '{{.Error}}' doctor-noimage").stdout
            return failed, [e.strip().strip('"') for e in errors.splitlines() if e.strip().strip('"')]

        def reported(value):
            failed, engine_said = value
            return ({"doctor-noimage", "doctor-noplace"} <= set(failed)
                    and any(e in failed["doctor-noimage"]["reason"] for e in engine_said))
        # the missing image's task is rejected once its pull fails
        found, engine_said = _until("both services reported with a task error", probe, reported)
        noimage = found["doctor-noimage"]["reason"]
        assert noimage.startswith("doctor-noimage: 0/1 running; "), noimage
        noplace = found["doctor-noplace"]["reason"]
        assert noplace.startswith("doctor-noplace: 0/1 running; 1 pending: no suitable node "
                                  "(scheduling constraints not satisfied on "), noplace
        assert found["doctor-noplace"]["host"] == "(cluster)"
    finally:
        ssh(lab, h1, "docker service rm doctor-noimage doctor-noplace", check=False)


def test_a_worker_whose_engine_is_stopped_is_down_and_quorum_holds(lab, swarm):
    names = managers(lab)
    worker = next(h for h in reversed(lab.hosts) if h.hostname not in names)
    n = len(names)
    need = n // 2 + 1
    # the socket too: the probe's curl on docker.sock would start the engine again
    ssh(lab, worker, "systemctl stop docker.socket docker.service")
    try:
        out = _until(f"{worker.hostname} shown down", lambda: sb(lab, "doctor"),
                     lambda o: any(e["step"] == "doctor node" and e["host"] == worker.addr for e in o.failed))
        assert out.rc == 1
        [down] = [e for e in out.failed if e["step"] == "doctor node"]
        assert down["reason"].startswith(f"{worker.hostname} (worker) is down"), down
        [quorum] = steps(out, "doctor quorum")
        assert quorum["status"] == "ok" and quorum["reason"].startswith(
            f"{n} of {n} managers reachable, quorum {need}: may lose {n - need} more"), quorum
        assert any(e["step"] == "doctor engine" and e["host"] == worker.addr for e in out.failed)
        cert = [e for e in steps(out, "doctor node cert") if e["host"] == worker.addr]
        assert cert and cert[0]["reason"].endswith("90-day certificates")  # read from disk, engine or not
    finally:
        ssh(lab, worker, "systemctl reset-failed docker.service docker.socket; "
                         "systemctl start docker.socket docker.service")
        _until(f"{worker.hostname} ready again",
               lambda: ssh(lab, lab.hosts[0], "docker node ls --format '{{.Hostname}} {{.Status}}'").stdout,
               lambda s: f"{worker.hostname} Ready" in s and "Down" not in s)


def test_doctor_fails_naming_a_filtered_swarm_port(lab, swarm):
    blocked = lab.hosts[-1]
    ssh(lab, blocked, "iptables -I INPUT -p tcp --dport 7946 -j DROP")
    try:
        out = sb(lab, "doctor")
    finally:
        ssh(lab, blocked, "iptables -D INPUT -p tcp --dport 7946 -j DROP")
    assert out.rc == 1
    fails = [e for e in out.failed if e["step"] == "doctor swarm ports"]
    assert fails and all(f"{blocked.addr}:7946" in e["reason"] for e in fails), out.failed


def test_swarm_status_with_no_manager_answering_fails_in_one_line(lab, swarm, tmp_path):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hosts = tmp_path / "hosts.env"
    hosts.write_text(re.sub(r"(?m)^MANAGERS=.*$", f"MANAGERS=127.0.0.1:{port}", lab.hosts_env.read_text()))
    hosts.chmod(0o600)
    out = sb(lab, "swarm.status", json_lines=False, hosts_env=str(hosts))
    assert out.rc == 1, out.stdout + out.stderr
    assert out.stderr.strip().splitlines() == ["swarmbook: swarm.status failed on 127.0.0.1"], out.stderr
    assert (f"127.0.0.1        failed       swarm.status | connect: cannot connect to root@127.0.0.1:{port}"
            in out.stdout)
    assert "internal error" not in out.stdout + out.stderr
    as_json = sb(lab, "swarm.status", hosts_env=str(hosts))
    assert as_json.rc == 1 and as_json.recap() == {"127.0.0.1": {"ok": 0, "changed": 0, "failed": 1, "skipped": 0}}
    assert [json.loads(x)["event"] for x in as_json.stdout.splitlines()] == ["step", "recap"]
