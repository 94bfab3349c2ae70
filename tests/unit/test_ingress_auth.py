"""net.recreate-ingress with services on ingress, and registry.refresh-auth: pure parsers and
task flow against the scripted SSH pool (the lab tests run both on a real swarm)."""

import json

import swarmbook.tasks.net as TN
import swarmbook.tasks.registry as TR
from swarmbook import netcheck as N
from swarmbook import netcmd
from swarmbook import registrycmd as R
from swarmbook.session import Result

from .fakes import FakePool, make_run

ENV = ("MANAGERS=h1\nREGISTRY=reg.lab:5000\nREGISTRY_USER=ci\nREGISTRY_PASSWORD=s3cret-canary\n")


def spec(name, ports, image="reg.lab:5000/app:1@sha256:ab", labels=None):
    return json.dumps({"Name": name, "Labels": labels or {}, "EndpointSpec": {"Ports": ports},
                       "TaskTemplate": {"ContainerSpec": {"Image": image}}})


def port(target, published, mode=None, proto="tcp"):
    p = {"Protocol": proto, "TargetPort": target, "PublishedPort": published}
    return {**p, "PublishMode": mode} if mode else p


def test_ingress_users_are_services_with_an_ingress_port():
    text = "\n".join([spec("web", [port(80, 8080), port(443, 8443, "host")]),
                      spec("hostonly", [port(9501, 9501, "host")]),
                      spec("quiet", []),
                      spec("dns", [port(53, 53, "ingress", "udp"), port(53, 5353, "host", "udp")])])
    users = N.parse_ingress_users(text)
    assert sorted(users) == ["dns", "web"]
    assert users["web"] == [{"protocol": "tcp", "target": 80, "published": 8080, "mode": "ingress"}]
    assert len(users["dns"]) == 2  # removal is by target: the host-mode twin goes and comes back


def test_unpublish_and_republish_are_inverse():
    ports = N.parse_ingress_users(spec("dns", [port(53, 53, "ingress", "udp"), port(53, 5353, "host", "udp")]))["dns"]
    assert netcmd.unpublish_argv("dns", ports)[-3:] == ["--publish-rm", "53/udp", "dns"]
    add = netcmd.republish_argv("dns", ports)
    assert "published=53,target=53,protocol=udp,mode=ingress" in add
    assert "published=5353,target=53,protocol=udp,mode=host" in add


NETS = json.dumps([{"Name": "ingress", "Id": "i1", "Ingress": True, "Attachable": False,
                    "Options": {}, "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}]}}])


def _ingress_pool(users_text):
    return FakePool({N.ROUTES: ("", 0), N.NETWORKS: (NETS, 0), N.INGRESS_USERS: (users_text, 0)},
                    {r"--publish-rm|--publish-add|network (rm|create)": Result("", "", 0),
                     r"network inspect --format": Result("192.168.0.0/16\n", "", 0)})


def _recreate(pool, **kw):
    run, out = make_run(pool, ENV, task="net.recreate-ingress")
    TN.recreate_ingress.body.__wrapped__(run, run.settings.group("managers"), subnet="192.168.0.0/16", yes=True, **kw)
    return run, out.getvalue()


def test_recreate_refuses_while_services_use_ingress_and_changes_nothing():
    pool = _ingress_pool(spec("web", [port(80, 8080)]))
    run, out = _recreate(pool)
    assert pool.changes() == [] and run.failed() == ["h1"]
    assert "services publish through ingress: web" in out


def test_force_unpublishes_recreates_then_republishes_in_that_order():
    pool = _ingress_pool(spec("web", [port(80, 8080)]))
    run, _out = _recreate(pool, force=True)
    kinds = [("rm" if "--publish-rm" in c else "add" if "--publish-add" in c else "net")
             for c in pool.changes() if not c.startswith("docker network inspect")]
    assert kinds == ["rm", "net", "add"] and run.failed() == []


def test_force_republishes_even_when_the_recreation_fails():
    pool = _ingress_pool(spec("web", [port(80, 8080)]))
    pool.responses = {r"network rm": Result("", "boom", 1), **pool.responses}
    run, _ = _recreate(pool, force=True)
    assert any("--publish-add" in c for c in pool.changes()) and run.failed() == ["h1"]


# --- refresh-auth -------------------------------------------------------------------------

def _cfg(password):
    return json.dumps({"auths": {"reg.lab:5000": {"auth": R.expected_auth("ci", password)}}})


def _services(mark_for=()):
    lines = []
    for name, image in (("app_web", "reg.lab:5000/app:1@sha256:ab"), ("other", "busybox:latest")):
        labels = {R.AUTH_LABEL: R.auth_mark("reg.lab:5000", "ci", "s3cret-canary", name)} if name in mark_for else {}
        lines.append(json.dumps({"Name": name, "Labels": labels,
                                 "TaskTemplate": {"ContainerSpec": {"Image": image}}}))
    return "\n".join(lines)


def _refresh(pool, **kw):
    run, out = make_run(pool, ENV, task="registry.refresh-auth")
    TR.refresh_auth.body.__wrapped__(run, run.settings.group("managers"), **kw)
    return run, out.getvalue()


def test_parse_services_strips_digest_and_reads_the_mark():
    got = R.parse_services(_services(mark_for=("app_web",)))
    assert got["app_web"]["image"] == "reg.lab:5000/app:1" and got["app_web"]["mark"]
    assert got["other"] == {"image": "busybox:latest", "mark": ""}


def test_mark_depends_on_password_and_service_and_hides_the_password():
    a = R.auth_mark("r", "u", "pw1", "s")
    assert a != R.auth_mark("r", "u", "pw2", "s") != R.auth_mark("r", "u", "pw1", "t")
    assert "pw1" not in a and len(a) == 24


def test_refresh_updates_registry_services_once_then_nothing():
    pool = FakePool({R.docker_config_fact("root"): (_cfg("s3cret-canary"), 0), R.SERVICES: (_services(), 0)},
                    {r"service update": Result("", "", 0)})
    _run, out = _refresh(pool)
    assert len(pool.changes()) == 1 and "app_web" in pool.changes()[0]
    assert "--with-registry-auth" in pool.changes()[0] and "s3cret-canary" not in out + pool.changes()[0]
    pool2 = FakePool({R.docker_config_fact("root"): (_cfg("s3cret-canary"), 0), R.SERVICES: (_services(("app_web",)), 0)})
    run2, _ = _refresh(pool2)
    assert pool2.changes() == [] and run2.reporter.counts()["h1"]["changed"] == 0


def test_refresh_needs_the_manager_logged_in_with_the_current_password():
    pool = FakePool({R.docker_config_fact("root"): (_cfg("old-password"), 0), R.SERVICES: (_services(), 0)})
    run, out = _refresh(pool)
    assert pool.changes() == [] and run.failed() == ["h1"] and "run registry.login first" in out


def test_refresh_names_unknown_services():
    pool = FakePool({R.docker_config_fact("root"): (_cfg("s3cret-canary"), 0), R.SERVICES: (_services(), 0)})
    _run, out = _refresh(pool, services="app_web,nope")
    assert pool.changes() == [] and "no such service: nope" in out
