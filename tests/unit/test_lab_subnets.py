"""Every lab instance's network stays clear of the subnets the runbook and its tests create."""

import ipaddress

from swarmbook.config import KEYS
from swarmbook.lab import layout

RUNBOOK = {
    "default-network (NETWORK_SUBNET default)": str(KEYS["NETWORK_SUBNET"].default),
    "the runbook's default-network variant": "10.0.0.0/8",
    "Docker's default ingress": "10.0.0.0/24",
    "the runbook's new ingress (192.168.0.1/16)": "192.168.0.0/16",
    "test_22's second ingress": "10.250.0.0/16",
    "docker0 / docker_gwbridge default pool": "172.17.0.0/16",
    "docker_gwbridge": "172.18.0.0/16",
}


def test_every_lab_instance_subnet_is_clear_of_the_runbooks_networks():
    for k in range(layout.MAX_INSTANCE + 1):
        lab = ipaddress.ip_network(layout.subnet(k))
        for what, cidr in RUNBOOK.items():
            assert not lab.overlaps(ipaddress.ip_network(cidr)), f"lab instance {k} {lab} overlaps {what} {cidr}"
        assert ipaddress.ip_address(layout.gateway(k)) in lab
        assert all(ipaddress.ip_address(h.addr) in lab for h in layout.hosts(layout.MAX_HOSTS, k))


def test_lab_instances_do_not_overlap_each_other():
    nets = [ipaddress.ip_network(layout.subnet(k)) for k in range(layout.MAX_INSTANCE + 1)]
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
