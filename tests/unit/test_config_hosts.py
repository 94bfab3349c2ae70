"""Host identity is user@host:port: two hosts behind one address differ by port, one host is
listed once per group with one login, and workers need a manager (pure: config.parse)."""

import pytest

from swarmbook import config
from swarmbook.errors import ConfigError


def test_two_hosts_behind_one_address_are_two_hosts_named_by_port():
    s = config.parse("MANAGERS=10.0.0.1:22,10.0.0.1:2200\nWORKERS=10.0.0.2\n")
    managers = s.group("managers")
    assert [(h.host, h.port) for h in managers] == [("10.0.0.1", 22), ("10.0.0.1", 2200)]
    assert [str(h) for h in s.group("nodes")] == ["10.0.0.1:22", "10.0.0.1:2200", "10.0.0.2"]
    assert [h.ident for h in managers] == ["root@10.0.0.1:22", "root@10.0.0.1:2200"]


def test_one_host_in_several_groups_is_one_host():
    s = config.parse("MANAGERS=10.0.0.1\nGITLAB=10.0.0.1\nKONG=root@10.0.0.1:22\n")
    assert [str(h) for h in s.group("all")] == ["10.0.0.1"]


def test_ipv6_identity_is_bracketed():
    s = config.parse("MANAGERS=deploy@[fd00::1]:2222\n")
    assert s.group("managers")[0].ident == "deploy@[fd00::1]:2222"


@pytest.mark.parametrize("text, message", [
    ("MANAGERS=a,b,a\n", "line 1: MANAGERS: root@a:22 is listed twice"),
    ("SSH_PORT=2222\nMANAGERS=a,a:2222\n", "root@a:2222 is listed twice"),
    ("MANAGERS=a\nWORKERS=b\nWORKERS=a\n", "line 3: WORKERS: root@a:22 is in MANAGERS and WORKERS"),
    ("MANAGERS=a\nKONG=ops@a\n", "line 2: KONG: a:22 is ops@ here but root@ in MANAGERS: one host, one login"),
    ("WORKERS=b\n", "line 1: WORKERS without MANAGERS"),
])
def test_host_lists_that_cannot_be_one_cluster_are_refused(text, message):
    with pytest.raises(ConfigError, match=None) as exc:
        config.parse(text)
    assert message in str(exc.value)


def test_the_same_address_on_other_ports_is_not_a_duplicate():
    s = config.parse("MANAGERS=a:22\nWORKERS=a:2200\n")
    assert [(h.host, h.port) for h in s.group("nodes")] == [("a", 22), ("a", 2200)]
