"""The commands net.*, swarm.*, stack.*, registry.refresh-auth, image.build-push and
docker.mirrors send, exactly as their task bodies used to write them; each user value (network,
service, stack, node, label, image) run through a real sh against recorded programs."""

import pytest

from swarmbook import containercmd, dockercmd, facts, netcmd, registrycmd, stackcmd, swarmcmd

from .recorder import Recorder


@pytest.fixture
def rec(tmp_path):
    return Recorder(tmp_path)


# --- net -------------------------------------------------------------------------------------

def test_network_create_exact():
    assert netcmd.create_cmd("default-network", "10.1.0.0/16", encrypted=True) == (
        "docker network create --driver overlay --subnet 10.1.0.0/16 --attachable --opt encrypted default-network")
    assert netcmd.create_cmd("n", "10.2.0.0/16", encrypted=False) == (
        "docker network create --driver overlay --subnet 10.2.0.0/16 --attachable n")


def test_recreate_ingress_exact():
    assert netcmd.recreate_ingress_cmd("ingress", "192.168.0.0/16", exists=True) == (
        "echo y | docker network rm ingress >/dev/null && "
        "for i in $(seq 60); do docker network inspect ingress >/dev/null 2>&1 || break; sleep 1; done && "
        "docker network create --driver overlay --ingress --subnet 192.168.0.0/16 ingress")
    assert netcmd.recreate_ingress_cmd("ingress", "192.168.0.0/16", exists=False) == (
        "docker network create --driver overlay --ingress --subnet 192.168.0.0/16 ingress")


def test_network_reads_exact():
    assert netcmd.subnet_cmd("ingress") == \
        "docker network inspect --format '{{range .IPAM.Config}}{{.Subnet}}{{end}}' ingress"
    assert netcmd.network_id_cmd("big-network") == "docker network inspect --format '{{.Id}}' big-network"
    assert netcmd.service_networks_cmd("demo_demo") == \
        "docker service inspect --format '{{range .Spec.TaskTemplate.Networks}}{{.Target}} {{end}}' demo_demo"


def test_migrate_moves_one_task_at_a_time_exact():
    one = "--update-parallelism 1 --update-delay 2s"
    assert netcmd.attach_cmd("demo_demo", "big") == \
        f"docker service update --detach=false --quiet {one} --network-add big demo_demo"
    assert netcmd.detach_cmd("demo_demo", "default-network") == \
        f"docker service update --detach=false --quiet {one} --network-rm default-network demo_demo"


def test_unpublish_and_republish_exact():
    ports = [{"protocol": "tcp", "target": 80, "published": 8080, "mode": "ingress"}]
    assert netcmd.unpublish_cmd("web", ports) == "docker service update --detach=false --quiet --publish-rm 80/tcp web"
    assert netcmd.republish_cmd("web", ports) == ("docker service update --detach=false --quiet --publish-add "
                                                  "published=8080,target=80,protocol=tcp,mode=ingress web")


def test_network_and_service_names_reach_docker_as_one_argument(rec):
    evil = rec.evil
    cmds = [netcmd.create_cmd(evil, "10.1.0.0/16", encrypted=True), netcmd.subnet_cmd(evil),
            netcmd.network_id_cmd(evil), netcmd.service_networks_cmd(evil), netcmd.attach_cmd(evil, evil),
            netcmd.detach_cmd(evil, evil), netcmd.recreate_ingress_cmd(evil, "192.168.0.0/16", exists=True)]
    for cmd in cmds:
        for call in rec.run(cmd):
            assert call[0] == "docker" and call[-1] == evil, call
    calls = rec.run(netcmd.recreate_ingress_cmd(evil, "192.168.0.0/16", exists=True))
    assert [c[1:3] for c in calls] == [["network", "rm"], ["network", "inspect"], ["network", "create"]]
    assert rec.pwned() == []


# --- swarm -----------------------------------------------------------------------------------

def test_swarm_node_commands_exact():
    assert swarmcmd.promote_cmd("n2") == "docker node promote n2"
    assert swarmcmd.remove_node_cmd("n9", demote=True) == \
        "docker node demote n9 >/dev/null 2>&1; docker node rm --force n9"
    assert swarmcmd.remove_node_cmd("n9", demote=False) == "docker node rm --force n9"
    assert swarmcmd.node_labels_cmd("n1") == "docker node inspect --format '{{json .Spec.Labels}}' n1"
    assert swarmcmd.label_add_cmd("n1", {"portainer": "true", "zone": "a b"}) == \
        "docker node update --label-add portainer=true --label-add 'zone=a b' n1"
    assert swarmcmd.NODE_ADDRS_CMD == \
        "docker node ls -q | xargs docker node inspect --format '{{.ID}} {{.Status.Addr}}'"


def test_node_ids_and_labels_reach_docker_as_one_argument(rec):
    evil = rec.evil
    assert rec.run(swarmcmd.promote_cmd(evil)) == [["docker", "node", "promote", evil]]
    assert rec.run(swarmcmd.remove_node_cmd(evil, demote=True)) == [
        ["docker", "node", "demote", evil], ["docker", "node", "rm", "--force", evil]]
    assert rec.run(swarmcmd.node_labels_cmd(evil))[0][-1] == evil
    assert rec.run(swarmcmd.label_add_cmd(evil, {evil: evil})) == [
        ["docker", "node", "update", "--label-add", f"{evil}={evil}", evil]]
    assert rec.pwned() == []


# --- stack -----------------------------------------------------------------------------------

def test_stack_commands_exact():
    assert stackcmd.config_create_cmd("demo_env_3f2a") == "docker config create demo_env_3f2a -"
    assert stackcmd.config_rm_cmd("demo_env_3f2a") == "docker config rm demo_env_3f2a"
    assert stackcmd.deploy_cmd("/opt/swarmbook/stacks/demo/deploy.yml", "demo") == (
        "docker stack deploy --with-registry-auth --prune -c /opt/swarmbook/stacks/demo/deploy.yml demo")
    assert stackcmd.tasks_state_cmd("demo") == ("docker stack ps --no-trunc --filter desired-state=running "
                                                "--format '{{.Name}} {{.CurrentState}} {{.Error}}' demo | head -5")
    assert stackcmd.http_answers_cmd(9501) == "curl -fsS -m 5 http://127.0.0.1:9501/"


def test_stack_names_and_paths_reach_docker_as_one_argument(rec):
    evil = rec.evil
    assert rec.run(stackcmd.deploy_cmd(f"/opt/{evil}/deploy.yml", evil)) == [
        ["docker", "stack", "deploy", "--with-registry-auth", "--prune", "-c", f"/opt/{evil}/deploy.yml", evil]]
    assert rec.run(stackcmd.config_create_cmd(evil)) == [["docker", "config", "create", evil, "-"]]
    assert rec.run(stackcmd.config_rm_cmd(evil)) == [["docker", "config", "rm", evil]]
    assert rec.run(stackcmd.tasks_state_cmd(evil))[0][-1] == evil
    assert rec.pwned() == []


# --- registry, image, docker -----------------------------------------------------------------

def test_refresh_auth_exact_and_quoted(rec):
    assert registrycmd.refresh_cmd("app_web", "m1") == ("docker service update --detach=false --quiet "
                                                        "--with-registry-auth --label-add swarmbook.registry-auth=m1 app_web")
    (call,) = rec.run(registrycmd.refresh_cmd(rec.evil, "m1"))
    assert call[-1] == rec.evil and rec.pwned() == []


def test_image_build_and_push_exact_and_quoted(rec):
    assert containercmd.build_cmd("reg.lab:5000/demo:latest", {"swarmbook.context": "abc"}) == \
        "docker build -q --label swarmbook.context=abc -t reg.lab:5000/demo:latest -"
    assert containercmd.push_cmd("reg.lab:5000/demo:latest") == "docker push reg.lab:5000/demo:latest"
    assert rec.run(containercmd.build_cmd(rec.evil, {"swarmbook.context": rec.evil})) == [
        ["docker", "build", "-q", "--label", f"swarmbook.context={rec.evil}", "-t", rec.evil, "-"]]
    assert rec.run(containercmd.push_cmd(rec.evil)) == [["docker", "push", rec.evil]]
    assert rec.pwned() == []


def test_docker_verify_commands_and_unit_file_fact():
    assert dockercmd.MIRRORS_CMD == "docker info --format '{{json .RegistryConfig.Mirrors}}'"
    unit = facts.unit_file("docker.service", "unit")
    assert unit.name == "unit" and unit.command == "systemctl cat docker.service"
    assert unit.parse("# /lib/systemd/system/docker.service\n", 0).startswith("# /lib") and unit.parse("", 1) is None
    assert facts.unit_file("a; reboot").command == "systemctl cat 'a; reboot'"
