"""inv doctor's cluster checks: quorum arithmetic, nodes not ready, services not converged with
their tasks' errors, node certificate expiry; then the task's flow with a scripted pool (the
text recap counts every host's checks) and swarm.status with no manager answering.

Node, service and task JSON comes from real engines (tests/unit/fixtures/engines, recorded by
scripts/record-engine-facts.py); the quorum cases change only the reachability or role of
recorded manager entries."""

import copy
import datetime as dt
import json
import types
from pathlib import Path

import pytest
from invoke.exceptions import Exit

import swarmbook.tasks.doctor as TDOCTOR
import swarmbook.tasks.swarm as TSWARM
from swarmbook import doctorcmd, swarmhealth, taskdef
from swarmbook import facts as F
from swarmbook.session import ConnectFailed

from .fakes import ABSENT, FakePool, make_run

FIXTURES = Path(__file__).parent / "fixtures/engines"
UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)


def recorded(engine: str, name: str):
    return json.loads((FIXTURES / engine / f"{name}.out").read_text())


# --- quorum ----------------------------------------------------------------------------

def cluster(managers: int, reachable: int, workers: int = 1) -> list[dict]:
    """A node list of ``managers`` managers (the first ``reachable`` of them reachable) and
    ``workers`` workers, made of entries a real 28.5 manager answered."""
    nodes = recorded("28.5.2+dfsg4", "nodes")
    template = next(n for n in nodes if n["Spec"]["Role"] == "manager")
    out = []
    for i in range(managers + workers):
        n = copy.deepcopy(template)
        n["ID"] = f"node{i:021d}"
        n["Description"]["Hostname"] = f"m{i + 1}" if i < managers else f"w{i + 1 - managers}"
        n["ManagerStatus"].pop("Leader", None)
        if i >= managers:
            n["Spec"]["Role"] = "worker"
            del n["ManagerStatus"]
        elif i >= reachable:
            n["ManagerStatus"]["Reachability"] = "unreachable"
            n["Status"].update(State="down", Message="heartbeat failure")
        out.append(n)
    return out


def test_quorum_of_the_recorded_three_manager_cluster():
    c = swarmhealth.quorum_check(recorded("28.5.2+dfsg4", "nodes"))
    assert (c.host, c.name, c.level) == ("(cluster)", "quorum", "ok")
    assert c.detail == "3 of 3 managers reachable, quorum 2: may lose 1 more"


@pytest.mark.parametrize("managers, reachable, level, detail", [
    (1, 1, "ok", "1 of 1 managers reachable, quorum 1: may lose 0 more (one manager: its loss stops the cluster's "
                 "management; 3 tolerate the loss of 1)"),
    (3, 3, "ok", "3 of 3 managers reachable, quorum 2: may lose 1 more"),
    (3, 2, "warn", "2 of 3 managers reachable, quorum 2: may lose 0 more; unreachable: m3"),
    (5, 4, "warn", "4 of 5 managers reachable, quorum 3: may lose 1 more; unreachable: m5"),
    (5, 5, "ok", "5 of 5 managers reachable, quorum 3: may lose 2 more"),
    (2, 2, "warn", "2 of 2 managers reachable, quorum 2: may lose 0 more; an even count adds no fault "
                   "tolerance (use 1 or 3)"),
    (4, 4, "warn", "4 of 4 managers reachable, quorum 3: may lose 1 more; an even count adds no fault "
                   "tolerance (use 3 or 5)"),
])
def test_quorum_arithmetic(managers, reachable, level, detail):
    c = swarmhealth.quorum_check(cluster(managers, reachable))
    assert (c.level, c.detail) == (level, detail)


@pytest.mark.parametrize("managers, reachable", [(3, 1), (2, 1), (5, 2), (4, 2)])
def test_quorum_lost_fails_naming_the_unreachable(managers, reachable):
    c = swarmhealth.quorum_check(cluster(managers, reachable))
    assert c.level == "fail"
    assert c.detail.startswith(f"lost: {reachable} of {managers} managers reachable, quorum {managers // 2 + 1} "
                               f"(unreachable: {', '.join(f'm{i}' for i in range(reachable + 1, managers + 1))})")


# --- nodes -----------------------------------------------------------------------------

def test_a_down_node_fails_named_by_its_hosts_env_address():
    nodes = cluster(3, 2)
    addr = nodes[2]["Status"]["Addr"]
    checks = swarmhealth.node_checks(nodes, {addr})
    assert [(c.host, c.level) for c in checks] == [(addr, "fail")]
    assert checks[0].detail.startswith("m3 (manager) is down: heartbeat failure;")


def test_ready_nodes_pass_silently_and_a_drained_one_warns():
    nodes = recorded("28.5.2+dfsg4", "nodes")
    assert swarmhealth.node_checks(nodes, set()) == []
    nodes[1]["Spec"]["Availability"] = "drain"
    [c] = swarmhealth.node_checks(nodes, set())
    assert c.level == "warn" and "availability drain" in c.detail


# --- node certificate ------------------------------------------------------------------

def pem(not_after: dt.datetime, not_before: dt.datetime | None = None) -> str:
    """A real certificate (EC key, self-signed) valid until ``not_after``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node1")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or not_after - dt.timedelta(days=90)).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


NINETY = dt.timedelta(days=90)


def test_cert_far_from_expiry_passes_with_days_left():
    c = swarmhealth.cert_check("h1", pem(NOW + dt.timedelta(days=89, hours=23)), now=NOW, lifetime=NINETY)
    end = NOW + dt.timedelta(days=89, hours=23)
    assert (c.name, c.level) == ("node cert", "ok")
    assert c.detail == f"90 days left (expires {end:%Y-%m-%d}); the swarm issues 90-day certificates"


def test_cert_under_thirty_days_warns():
    c = swarmhealth.cert_check("h1", pem(NOW + dt.timedelta(days=12, hours=1)), now=NOW, lifetime=NINETY)
    assert c.level == "warn" and c.detail.startswith("12 days left") and "renewed" in c.detail


def test_cert_on_the_thirty_day_line():
    assert swarmhealth.cert_check("h1", pem(NOW + dt.timedelta(days=29, hours=23)), now=NOW).level == "warn"
    assert swarmhealth.cert_check("h1", pem(NOW + dt.timedelta(days=30, hours=1)), now=NOW).level == "ok"


def test_expired_cert_fails():
    end = NOW - dt.timedelta(days=2)
    c = swarmhealth.cert_check("h1", pem(end), now=NOW)
    assert c.level == "fail" and c.detail.startswith(f"expired {end:%Y-%m-%d %H:%M} UTC")


def test_unreadable_cert_warns():
    c = swarmhealth.cert_check("h1", "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n", now=NOW)
    assert c.level == "warn" and c.detail.startswith("unreadable certificate")


def test_cert_lifetime_from_a_recorded_managers_info():
    assert swarmhealth.cert_lifetime(recorded("28.5.2+dfsg4", "docker_info")) == NINETY
    assert swarmhealth.cert_lifetime({"Swarm": {"LocalNodeState": "inactive"}}) is None


# --- engine answers --------------------------------------------------------------------

def test_an_error_answer_is_kept_apart_from_no_answer():
    refused = '{"message":"The swarm does not have a leader. It\'s possible that too few managers are online."}\n'
    assert swarmhealth.parse_answer(refused, 22) == swarmhealth.Refused(
        "The swarm does not have a leader. It's possible that too few managers are online.")
    assert swarmhealth.parse_answer("", 7) is None  # curl: could not connect
    assert swarmhealth.parse_answer("[]", 0) == []


def test_manager_facts_keep_the_engines_error_body_and_the_cert_follows_the_data_root():
    assert swarmhealth.NODES.command == ("curl -sS --fail-with-body --max-time 30 --unix-socket "
                                         "/var/run/docker.sock http://localhost/nodes")
    assert swarmhealth.SERVICES.command.endswith(" 'http://localhost/services?status=true'")
    assert swarmhealth.NODE_CERT.command == (
        "root=$(curl -sSf --max-time 30 --unix-socket /var/run/docker.sock http://localhost/info | "
        "sed -n 's/.*\"DockerRootDir\":\"\\([^\"]*\\)\".*/\\1/p'); "
        'cat "${root:-/var/lib/docker}/swarm/certificates/swarm-node.crt"')


# --- swarm ports ---------------------------------------------------------------------

def ports(reach: str, managers) -> doctorcmd.Check:
    f = {"engine": "28.5.2+dfsg4 (API 1.51)", "clock": 1000.0, "disk_mb": 50000, "ipvs": False, "routes": [],
         "reach": doctorcmd._parse_reach(reach, 0)}
    checks = doctorcmd.verdicts("m1", f, sent=1000.0, received=1000.0, engines={f["engine"]}, subnet="10.1.0.0/16",
                                swarm_active=True, managers=managers)
    return next(c for c in checks if c.name == "swarm ports")


def test_a_workers_closed_2377_is_no_finding_a_managers_is():
    reach = "w1 2377 1\nw1 7946 0\nm2 2377 1\nm2 7946 0\n"  # bash /dev/tcp: 1 = refused
    assert ports(reach, {"m1", "m2"}) == doctorcmd.Check("m1", "swarm ports", "warn", "reachable but closed: m2:2377")
    assert ports(reach, {"m1", "m2", "w1"}).detail == "reachable but closed: w1:2377, m2:2377"
    assert ports("w1 2377 1\nw1 7946 0\n", {"m1"}).level == "ok"
    assert ports("w1 2377 0\nw1 7946 1\n", {"m1"}).detail == "reachable but closed: w1:7946"


# --- the task's flow -------------------------------------------------------------------

TWO = "MANAGERS=h1\nWORKERS=h2\n"


def probe_answers(host: str, peers: list[str], info: dict, *, manager: dict | None = None,
                  cert: str | None = None) -> dict:
    """Every fact doctor sends to ``host``, answered as a healthy node would."""
    answers = {}
    for fact in doctorcmd.probe_facts([p for p in peers if p != host]):
        answers[fact] = {
            "engine": ("28.5.2+dfsg4 (API 1.51)\n", 0), "clock": ("1000.0\n", 0), "disk_mb": ("50000\n", 0),
            "ipvs": ABSENT, "routes": ("172.29.101.0/24 dev eth0 proto kernel scope link src 172.29.101.11\n", 0),
            "reach": ("".join(f"{p} {port} 0\n" for p in peers if p != host for port in (2377, 7946)), 0),
        }[fact.name]
    answers[F.docker_info()] = (json.dumps(info), 0)
    answers[swarmhealth.NODE_CERT] = (cert, 0) if cert else ABSENT
    for fact in swarmhealth.MANAGER_FACTS if manager is not None else ():
        answers[fact] = manager[fact.name]
    return answers


def fake_pool(per_host: dict[str, dict]) -> FakePool:
    pool = FakePool()
    for answers in per_host.values():
        for fact, answer in answers.items():
            pool.facts[fact] = answer  # the probe's commands differ per host (peers); each is listed
    return pool


def run_doctor(pool, env=TWO, monkeypatch=None, json_lines=False):
    monkeypatch.setattr(TDOCTOR, "time", types.SimpleNamespace(time=lambda: 1000.0))
    run, out = make_run(pool, env, task="doctor", json_lines=json_lines)
    TDOCTOR.doctor.body.__wrapped__(run, list(run.settings.group("all")))
    run.recap()
    return run, out


def swarm_answers(engine: str = "28.5.2+dfsg4") -> dict:
    info = recorded(engine, "docker_info")
    nodes = recorded(engine, "nodes")
    services = recorded(engine, "services")
    manager = {"swarm_nodes": (json.dumps(nodes), 0), "swarm_services": (json.dumps(services), 0),
               "swarm_tasks": ("[]", 0)}
    return {"h1": probe_answers("h1", ["h1", "h2"], info, manager=manager, cert=pem(NOW + NINETY)),
            "h2": probe_answers("h2", ["h1", "h2"], info, cert=pem(NOW + NINETY))}


def test_text_recap_counts_every_hosts_checks(monkeypatch):
    run, out = run_doctor(fake_pool(swarm_answers()), monkeypatch=monkeypatch)
    text = out.getvalue()
    assert "(no hosts)" not in text
    recap = text[text.index("RECAP doctor"):].splitlines()
    rows = {r.split()[0]: r.split()[1:] for r in recap[2:]}
    # ssh, engine, clock, disk, ipvs (a warning: still ok), subnet, swarm ports, node cert
    assert rows["h1"] == ["8", "0", "0", "0"] and rows["h2"] == ["8", "0", "0", "0"], text
    assert rows["(cluster)"] == ["2", "0", "0", "0"]  # quorum, services
    assert "(cluster)        quorum       OK     3 of 3 managers reachable, quorum 2: may lose 1 more" in text
    assert "node cert    OK     90 days left" in text
    assert run.failed() == []


def test_json_lines_carry_every_check_as_a_step(monkeypatch):
    run, out = run_doctor(fake_pool(swarm_answers()), monkeypatch=monkeypatch, json_lines=True)
    steps = [json.loads(x) for x in out.getvalue().splitlines() if '"event": "step"' in x]
    assert {s["step"] for s in steps} >= {"doctor quorum", "doctor services", "doctor node cert", "doctor ssh"}
    assert all(s["status"] == "ok" for s in steps)


def test_no_manager_listing_nodes_fails_the_cluster(monkeypatch):
    answers = swarm_answers()
    refused = '{"message":"rpc error: code = Unknown desc = The swarm does not have a leader."}'
    for fact in swarmhealth.MANAGER_FACTS:
        answers["h1"][fact] = (refused, 22)
    run, out = run_doctor(fake_pool(answers), monkeypatch=monkeypatch)
    assert run.failed() == ["(cluster)"]
    assert "(cluster)        failed       doctor | doctor quorum: lost: The swarm does not have a leader. " \
           "(3 managers known to this one, quorum 2)" in out.getvalue()


def test_before_the_swarm_only_the_planned_manager_count_is_checked(monkeypatch):
    info = {"ServerVersion": "28.5.2+dfsg4", "Swarm": {"LocalNodeState": "inactive"}}
    absent = {f.name: ABSENT for f in swarmhealth.MANAGER_FACTS}
    answers = {"h1": probe_answers("h1", ["h1", "h2"], info, manager=absent),
               "h2": probe_answers("h2", ["h1", "h2"], info)}
    run, out = run_doctor(fake_pool(answers), env="MANAGERS=h1,h2\n", monkeypatch=monkeypatch)
    text = out.getvalue()
    assert " quorum " not in text and "node cert" not in text
    assert "managers     WARN   2 managers in hosts.env: use an odd number" in text


# --- swarm.status with no manager answering --------------------------------------------

class Unreachable(FakePool):
    def connect(self, spec, **kw):
        raise ConnectFailed(f"cannot connect to root@{spec.host}:22: [Errno 111] Connection refused")


def test_status_without_an_answering_manager_fails_like_an_unreachable_host():
    run, out = make_run(Unreachable(), "MANAGERS=h1,h2\n", task="swarm.status")
    taskdef.execute(TSWARM.status.body.swarmbook, run, list(run.settings.group("managers")))
    with pytest.raises(Exit) as exc:
        taskdef.finish(run)
    assert exc.value.code == 1 and exc.value.message == "swarmbook: swarm.status failed on h1, h2"
    assert "internal error" not in out.getvalue()


# --- tasks swarm stopped restarting ---------------------------------------------------------

def test_a_slot_swarm_stopped_restarting_fails_though_the_counts_say_converged():
    """The disaster drill's rejoined node: five rejections on h3, no task since, and a global
    service's counts dropping h3 (2/2). doctor names the node, the error and the way out."""
    services = recorded("28.5.2+dfsg4", "services")
    svc = copy.deepcopy(services[0])
    svc["Spec"]["Mode"] = {"Global": {}}
    svc["ServiceStatus"] = {"RunningTasks": 2, "DesiredTasks": 2}
    name = svc["Spec"]["Name"]
    nodes = cluster(1, 1, workers=2)
    ids = [n["ID"] for n in nodes]
    why = "cannot create a swarm scoped network when swarm is not active"

    def task(node, state, desired, at, err=""):
        return {"ID": f"t{at}{node[-1]}", "ServiceID": svc["ID"], "NodeID": node, "DesiredState": desired,
                "Status": {"State": state, "Err": err}, "CreatedAt": f"2026-12-02T10:00:{at:02d}.5Z"}

    history = [task(ids[0], "running", "running", 1), task(ids[1], "running", "running", 1),
               *[task(ids[2], "rejected", "shutdown", at, why) for at in (1, 7, 13, 19, 25)]]
    (check,) = swarmhealth.service_checks([svc], history, nodes)
    assert check.level == "fail" and check.detail == (
        f"{name}: 2/2 running, and swarm stopped restarting it (w2: rejected ({why}); restart_policy "
        f"max_attempts used up): stack.deploy restarts it (or docker service update --force {name})")
    retrying = history + [task(ids[2], "pending", "ready", 31)]  # attempts left: swarm is still at it
    assert [c.level for c in swarmhealth.service_checks([svc], retrying, nodes)] == ["ok"]
