"""The swarm lifecycle on the real 3-node lab: 1 manager + 2 workers from hosts.env, the shared
network, registry logins, build + push, the demo stack with a rolling .env config, net.migrate.

Not provable here (see LAB-FACTS.md): the routing mesh (no IPVS) and traffic across nodes on an
encrypted overlay. The stack therefore publishes in host mode (STACK_PUBLISH_MODE=host in the
lab's hosts.env): every node runs one task and answers on its own address.
"""

import json
import threading
import time
import urllib.request

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def leader(lab):
    return lab.hosts[0]


def test_init_joins_manager_and_workers_then_nothing_to_do(lab):
    assert sb(lab, "docker.install").rc == 0
    out = sb(lab, "swarm.init")
    assert out.rc == 0, out.stdout + out.stderr
    nodes = [json.loads(x) for x in ssh(lab, leader(lab), "docker node ls --format '{{json .}}'").stdout.splitlines()]
    by_host = {n["Hostname"]: n for n in nodes}
    assert set(by_host) == {h.hostname for h in lab.hosts}
    assert by_host[lab.hosts[0].hostname]["ManagerStatus"] == "Leader"
    for h in lab.hosts[1:]:
        assert by_host[h.hostname]["ManagerStatus"] == "" and by_host[h.hostname]["Status"] == "Ready"
    again = sb(lab, "swarm.init")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_join_tokens_never_printed(lab):
    token = ssh(lab, leader(lab), "docker swarm join-token -q worker").stdout.strip()
    out = sb(lab, "swarm.init", json_lines=False)
    assert token and token not in out.stdout + out.stderr


def test_status_lists_nodes_and_leader(lab):
    out = sb(lab, "swarm.status", json_lines=False)
    assert out.rc == 0, out.stderr
    for h in lab.hosts:
        assert h.hostname in out.stdout
    assert "Leader" in out.stdout


def test_network_created_encrypted_attachable_once(lab):
    out = sb(lab, "net.create")
    assert out.rc == 0, out.stdout + out.stderr
    info = json.loads(ssh(lab, leader(lab), "docker network inspect default-network --format '{{json .}}'").stdout)
    assert info["Driver"] == "overlay" and info["Attachable"] and "encrypted" in info["Options"]
    assert info["IPAM"]["Config"][0]["Subnet"] == "10.1.0.0/16"
    assert sb(lab, "net.create").changed == 0


@pytest.mark.parametrize("subnet, message", [
    ("LAB", "overlaps"),                     # the lab hosts' own subnet
    ("10.1.128.0/17", "overlaps network default-network"),
    ("10.0.0.0/33", "not a CIDR"),
    ("10.7.0.0", "no prefix length"),
])
def test_bad_or_overlapping_subnets_refused_before_any_change(lab, subnet, message):
    if subnet == "LAB":
        subnet = lab.hosts[0].addr.rsplit(".", 1)[0] + ".0/24"
    before = ssh(lab, leader(lab), "docker network ls -q | sort").stdout
    out = sb(lab, "net.create", "--name", "probe-net", "--subnet", subnet, json_lines=False)
    assert out.rc == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert ssh(lab, leader(lab), "docker network ls -q | sort").stdout == before


def test_registry_login_on_every_node_password_never_shown(lab):
    pw = (lab.state_dir / "registry.password").read_text().strip()
    out = sb(lab, "registry.login", json_lines=False)
    assert out.rc == 0, out.stdout + out.stderr
    assert pw not in out.stdout + out.stderr
    for h in lab.hosts:
        cfg = ssh(lab, h, "cat /root/.docker/config.json").stdout
        assert "registry.lab:5000" in cfg
    assert sb(lab, "registry.login").changed == 0


def _http(addr, port=9501):
    with urllib.request.urlopen(f"http://{addr}:{port}/", timeout=5) as r:
        return r.read().decode()


def test_build_push_deploy_demo_answers_on_every_node(lab):
    out = sb(lab, "image.build-push")
    assert out.rc == 0, out.stdout + out.stderr
    out = sb(lab, "stack.deploy", "demo")
    assert out.rc == 0, out.stdout + out.stderr
    for h in lab.hosts:
        body = _http(h.addr)
        assert "demo ok" in body and "APP_NAME=demo" in body
    again = sb(lab, "stack.deploy", "demo")
    assert again.rc == 0 and again.changed == 0, again.stdout
    # The lab's kernel has no IPVS (LAB-FACTS): the runbook's sysctls would stop every task from
    # starting, so they stay out and the step says why (their presence is unit-tested).
    (step,) = [e for e in again.steps() if e["step"] == "ipvs sysctls"]
    assert "left out: this kernel has no IPVS" in step["reason"], step
    assert "sysctls" not in ssh(lab, leader(lab), "cat /opt/swarmbook/stacks/demo/deploy.yml").stdout


def test_changed_env_rolls_the_service_to_a_new_config(lab, tmp_path):
    env = tmp_path / "app.env"
    env.write_text("APP_NAME=demo-rolled\nDB_HOST=mysql\n")
    out = sb(lab, "stack.deploy", "demo", "--app-env", str(env))
    assert out.rc == 0, out.stdout + out.stderr
    for h in lab.hosts:
        assert "APP_NAME=demo-rolled" in _http(h.addr)
    assert sb(lab, "stack.deploy", "demo", "--app-env", str(env)).changed == 0
    back = sb(lab, "stack.deploy", "demo")  # and back to the shipped .env
    assert back.rc == 0 and "APP_NAME=demo\n" in _http(lab.hosts[0].addr)
    configs = ssh(lab, leader(lab), "docker config ls --format '{{.Name}}'").stdout.split()
    assert len([c for c in configs if c.startswith("demo_env_")]) == 1  # old ones pruned


def test_migrate_moves_service_to_bigger_network_while_answering(lab):
    assert sb(lab, "net.create", "--name", "big-network", "--subnet", "10.8.0.0/16").rc == 0
    rounds, stop = [], threading.Event()

    def probe():  # bounded: at most 1500 rounds of one request per node
        while not stop.is_set() and len(rounds) < 1500:
            answered = []
            for h in lab.hosts:
                try:
                    answered.append("demo ok" in _http(h.addr))
                except Exception:  # noqa: BLE001 - a node restarting its task
                    answered.append(False)
            rounds.append(answered)
            time.sleep(0.2)

    t = threading.Thread(target=probe)
    t.start()
    try:
        out = sb(lab, "net.migrate", "demo_demo", "--to", "big-network", "--from", "default-network")
    finally:
        stop.set()
        t.join()
    assert out.rc == 0, out.stdout + out.stderr
    nets = ssh(lab, leader(lab), "docker service inspect --format "
                                 "'{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}' demo_demo").stdout.split()
    big = ssh(lab, leader(lab), "docker network inspect --format '{{.Id}}' big-network").stdout.strip()
    assert nets == [big]
    # Host-mode publishing restarts each node's task in turn; the service as a whole must
    # answer in every probe round (some node always serves).
    gaps = [i for i, r in enumerate(rounds) if not any(r)]
    print(f"migrate: {len(rounds)} probe rounds, {sum(not all(r) for r in rounds)} with a node restarting")
    assert len(rounds) > 5 and not gaps, f"no node answered in rounds {gaps[:10]} of {len(rounds)}"
    assert sb(lab, "net.migrate", "demo_demo", "--to", "big-network", "--from", "default-network").changed == 0
    back = sb(lab, "stack.update", "demo")  # the stack file names default-network: redeploy returns there
    assert back.rc == 0, back.stdout + back.stderr


def test_second_operator_fails_clearly_while_the_cluster_is_locked(lab):
    ssh(lab, leader(lab), "mkdir -p /run/swarmbook.lock && echo 'alice@laptop pid 1 task stack.deploy' "
                          "> /run/swarmbook.lock/owner")
    try:
        out = sb(lab, "stack.deploy", "demo", json_lines=False)
        assert out.rc == 3 and "cluster locked" in out.stderr and "alice@laptop" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        st = sb(lab, "lock.status")
        assert "alice@laptop" in st.steps("ok")[0]["reason"]
        assert sb(lab, "swarm.status", json_lines=False).rc == 0  # read-only tasks take no lock
    finally:
        rel = sb(lab, "lock.release")
    assert rel.rc == 0 and rel.changed == 1
    assert sb(lab, "stack.deploy", "demo").rc == 0
    assert ssh(lab, leader(lab), "test -e /run/swarmbook.lock", check=False).returncode != 0  # released after use
