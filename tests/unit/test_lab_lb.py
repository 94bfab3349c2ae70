"""The lab's load balancer config (pure): every host an upstream with passive health, and a
retry on the next node for every request, so a node replacing its task costs no request."""

from swarmbook.lab import layout, lb


def test_every_host_is_an_upstream_with_passive_health_and_retries():
    text = lb.config(layout.hosts(3), 9501)
    assert text.count("max_fails=1 fail_timeout=3s;") == 3
    for h in layout.hosts(3):
        assert f"server {h.addr}:9501 " in text
    assert "proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;" in text
    assert "proxy_next_upstream_tries 3;" in text and f"listen {lb.LISTEN};" in text


def test_the_lb_sits_at_dot_5_of_its_instance_and_is_named_for_it():
    assert lb.addr(0) == "172.29.100.5" and lb.addr(3) == "172.29.103.5"
    assert lb.name(0) == "swarmbook-lab-lb" and lb.url(2) == "http://172.29.102.5:8080/"
    assert not layout.is_host_name(lb.name(0))  # lab.status and remove_extra leave it alone
