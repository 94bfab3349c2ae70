"""net.recreate-ingress and registry.refresh-auth on the real 3-node lab swarm (after test_20:
the demo stack runs in host mode on every node).

Ingress: the lab has no IPVS, so the routing mesh carries no traffic here (LAB-FACTS.md); what
is proved is what docker does: the network is removed and created on the new subnet, a service
publishing through ingress blocks it unless --force, and --force gives that service its ports
back. NOT proved: that traffic flows through the new routing mesh.

Registry: the lab registry's password is really changed (htpasswd + restart); the proof that
the swarm holds the new credentials is a pull on worker nodes that are logged out and have lost
the image, so the only credentials they can use are the ones stored with the service.
"""

import json
import secrets

import pytest

from swarmbook.lab import layout
from swarmbook.lab import registry as lab_registry

from .sb import sb, ssh

pytestmark = pytest.mark.lab

USER = "sb-ingress-user"


def leader(lab):
    return lab.hosts[0]


def ingress_subnet(lab) -> str:
    return ssh(lab, leader(lab), "docker network inspect --format "
                                 "'{{range .IPAM.Config}}{{.Subnet}}{{end}}' ingress").stdout.strip()


def ports_of(lab, service) -> list:
    out = ssh(lab, leader(lab), f"docker service inspect --format '{{{{json .Spec.EndpointSpec.Ports}}}}' {service}")
    return json.loads(out.stdout)


def test_recreate_ingress_refuses_for_ingress_users_then_force_keeps_their_ports(lab):
    ssh(lab, leader(lab), f"docker service rm {USER} >/dev/null 2>&1; docker service create --detach --quiet "
                          f"--no-resolve-image --replicas 0 --name {USER} --publish published=9780,target=80 "
                          f"{layout.REGISTRY_HOST}:{layout.REGISTRY_PORT}/swarmbook-lab-seed/busybox:latest")
    before = ingress_subnet(lab)
    target = "192.168.0.0/16" if before != "192.168.0.0/16" else "10.250.0.0/16"  # a rerun moves it again
    try:  # first with the host bits set, as the runbook writes it (192.168.0.1/16)
        out = sb(lab, "net.recreate-ingress", "--subnet", target.replace(".0/16", ".1/16"), "--yes")
        assert out.rc == 1 and USER in out.stdout and "--force" in out.stdout, out.stdout + out.stderr
        assert out.changed == 0 and ingress_subnet(lab) == before
        assert any("host bits" in e.get("text", "") for e in out.events if e.get("event") == "warning"), out.stdout

        out = sb(lab, "net.recreate-ingress", "--subnet", target, "--yes", "--force")
        assert out.rc == 0, out.stdout + out.stderr
        assert [s["step"] for s in out.steps("changed")] == [f"unpublish {USER}", "ingress network",
                                                              f"republish {USER}"]
        assert ingress_subnet(lab) == target
        assert ports_of(lab, USER) == [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 9780,
                                        "PublishMode": "ingress"}]
        again = sb(lab, "net.recreate-ingress", "--subnet", target, "--yes", "--force")
        assert again.rc == 0 and again.changed == 0, again.stdout
    finally:
        ssh(lab, leader(lab), f"docker service rm {USER} >/dev/null", check=False)
    for h in lab.hosts:  # host-mode services never used ingress: still answering
        assert "demo ok" in ssh(lab, h, "curl -fsS -m 5 http://127.0.0.1:9501/").stdout


def _demo_image(lab) -> str:
    """The service's image as repo@sha256:... (tasks pull by digest, which leaves no tag)."""
    image = ssh(lab, leader(lab), "docker service inspect --format "
                                  "'{{.Spec.TaskTemplate.ContainerSpec.Image}}' demo_demo").stdout.strip()
    name, digest = image.split("@")
    repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return f"{repo}@{digest}"


def test_password_change_refresh_auth_lets_logged_out_workers_pull(lab):
    p = layout.Paths(lab.state_dir)
    old = p.password.read_text().strip()
    new = "rotated-" + secrets.token_hex(8)
    env = {"REGISTRY_PASSWORD": new}
    registry = f"{layout.REGISTRY_HOST}:{layout.REGISTRY_PORT}"
    settled = sb(lab, "registry.refresh-auth")  # stack.deploy stamped the current login already
    assert settled.rc == 0 and settled.changed == 0, settled.stdout
    try:
        assert lab_registry.set_password(p, new)
        stale = sb(lab, "registry.refresh-auth", env=env)  # the manager still holds the old login
        assert stale.rc == 1 and "run registry.login first" in stale.stdout and stale.changed == 0
        login = sb(lab, "registry.login", env=env)
        assert login.rc == 0 and {s["host"] for s in login.steps("changed")} == {h.addr for h in lab.hosts}
        out = sb(lab, "registry.refresh-auth", env=env)
        assert out.rc == 0 and "auth of demo_demo" in [s["step"] for s in out.steps("changed")], out.stdout
        assert sb(lab, "registry.refresh-auth", env=env).changed == 0
        assert new not in out.stdout + out.stderr + login.stdout + login.stderr

        image = _demo_image(lab)
        workers = lab.hosts[1:]
        for h in workers:  # logged out, image gone: only the service's stored auth can pull it
            ssh(lab, h, f"docker logout {registry} >/dev/null; docker image rm -f {image} >/dev/null 2>&1; "
                        f"! docker image inspect {image} >/dev/null 2>&1")
        ssh(lab, leader(lab), "docker service update --force --detach=false --quiet demo_demo")
        for h in workers:
            # the update returns once the service converged; give a worker's task up to 60 s more
            # to show up there (one CI run found h3 without the image right after it returned)
            pulled = ssh(lab, h, f"for i in $(seq 60); do docker image inspect {image} >/dev/null 2>&1 && exit 0; "
                                 "sleep 1; done; exit 1", check=False).returncode == 0
            tasks = "" if pulled else ssh(lab, leader(lab), "docker service ps --no-trunc demo_demo", check=False).stdout
            assert pulled, f"{h.addr} never pulled {image}:\n{tasks}"
            assert "demo ok" in ssh(lab, h, "curl -fsS -m 5 http://127.0.0.1:9501/").stdout
    finally:
        lab_registry.set_password(p, old)
        assert sb(lab, "registry.login").rc == 0
        assert sb(lab, "registry.refresh-auth").rc == 0
