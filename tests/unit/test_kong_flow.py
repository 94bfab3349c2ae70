"""kong.bootstrap's flow on a converged host: one probe (three containers in one docker
inspect, no Postgres exec, no migrations list) plus the dashboard's auth check; a database
that is not the recorded one makes it wait for Postgres and list migrations."""

import json

import swarmbook.tasks.kong as T
from swarmbook import containercmd as C
from swarmbook import facts as F
from swarmbook import kongcmd as K
from swarmbook.session import Result

from .fakes import FakePool, make_run

bootstrap = T.bootstrap.body.__wrapped__
ENV = "KONG=h1\nKONG_PG_PASSWORD=pw-1\nKONG_DASHBOARD_USERS=admin=dash-1\n"


def converged(settings, *, recorded_db="db-id"):
    net, pw, users = settings["NETWORK_NAME"], "pw-1", "admin=dash-1"
    db, gw = K.database(settings["KONG_DB_IMAGE"], net), K.gateway(settings["KONG_IMAGE"], net, "127.0.0.1")
    dash = K.dashboard(settings["KONG_DASHBOARD_IMAGE"], net, settings["KONG_DASHBOARD_PORT"])
    secrets = {db.name: K.db_secrets(pw), gw.name: K.kong_secrets(pw), dash.name: K.dashboard_secrets(users)}
    ids = {db.name: "db-id", gw.name: "kong-id", dash.name: "dash-id"}
    listed = [{"Id": ids[c.name], "Names": ["/" + c.name], "State": "running", "Status": "Up 2 hours",
               "Labels": {C.SPEC_LABEL: c.spec_hash(C.env_file_text(secrets[c.name]))}} for c in (db, gw, dash)]
    env_file = lambda c: ("root root 600\n" + C.env_file_text(secrets[c.name]), 0)  # noqa: E731
    dash_url = f"http://127.0.0.1:{settings['KONG_DASHBOARD_PORT']}/"
    return {F.command_exists("docker"): ("/usr/bin/docker", 0),
            C.network_fact(net): (json.dumps({"Driver": "overlay", "Attachable": True, "Scope": "swarm"}), 0),
            C.states_fact([db.name, gw.name, dash.name]): (json.dumps(listed), 0),
            F.file_state(K.DB_ENV, K.DB_ENV): env_file(db), F.file_state(K.KONG_ENV, K.KONG_ENV): env_file(gw),
            F.file_state(K.DASH_ENV, K.DASH_ENV): env_file(dash),
            F.file_state(K.MIGRATED, K.MIGRATED): (f"root root 600\nsha256:kong-image {recorded_db}\n", 0),
            C.image_id_fact(gw.image): (json.dumps({"Id": "sha256:kong-image"}), 0),
            K.admin_ok_fact(K.admin_url("127.0.0.1")): ("", 0), K.dashboard_code_fact(dash_url): ("401", 0)}


def run_bootstrap(facts_for, responses):
    pool = FakePool({}, responses)
    run, out = make_run(pool, ENV, task="kong.bootstrap")
    pool.facts.update(facts_for(run.settings))
    run.each(run.settings.group("kong"), lambda h: bootstrap(h))
    return pool, run, out.getvalue()


def test_a_converged_host_is_one_probe_and_the_auth_check():
    pool, run, out = run_bootstrap(converged, {r"-K -": Result("200", "", 0)})
    assert run.failed() == [] and run.reporter.counts()["h1"]["changed"] == 0, out
    assert pool.commands_run == 2
    probe = pool.sent[0][0]
    assert probe.count("/containers/json?all=true") == 1 and "pg_isready" not in probe and "migrations" not in probe
    assert "up to date (recorded" in out


def test_another_database_container_waits_for_postgres_and_lists_migrations():
    pool, run, out = run_bootstrap(lambda s: converged(s, recorded_db="an-older-db"), {
        r"pg_isready": Result("", "", 0),
        r"kong migrations list": Result("", "", K.LIST_OK),
        r"kong-migrated": Result("", "", 0),
        r"-K -": Result("200", "", 0)})
    sent = [c for c, _ in pool.sent]
    assert run.failed() == [], out
    assert any("pg_isready" in c for c in sent) and any("migrations list" in c for c in sent)
    assert [i for i, c in enumerate(sent) if "pg_isready" in c][0] < [i for i, c in enumerate(sent) if "list" in c][0]


def test_states_fact_parses_found_and_missing_containers():
    import urllib.parse

    fact = C.states_fact(["a", "b"])
    assert '"name":["^/a$","^/b$"]' in urllib.parse.unquote(fact.command) and "all=true" in fact.command
    listed = [{"Id": "x", "Names": ["/a"], "State": "running", "Status": "Up 1 hour (healthy)",
               "Labels": {C.SPEC_LABEL: "s"}},
              {"Id": "y", "Names": ["/ab"], "State": "exited", "Status": "Exited (0)", "Labels": {}}]
    got = fact.parse(json.dumps(listed), 0)
    assert got == {"a": {"id": "x", "running": True, "status": "running", "spec": "s", "health": "healthy"}, "b": None}
    assert fact.parse("", 7) == {"a": None, "b": None}  # engine not answering: treated as absent
    assert C.image_id_fact("kong:3").parse('{"Id": "sha256:1", "RepoTags": ["kong:3"]}', 0) == "sha256:1"
    assert C.image_id_fact("kong:3").parse('{"message": "No such image: kong:3"}', 22) is None
    one = C.state_fact("gitlab")
    assert one.command.endswith("http://localhost/containers/gitlab/json")
    inspect = {"Id": "g", "State": {"Running": False, "Status": "exited", "Health": {"Status": "unhealthy"}},
               "Config": {"Labels": {C.SPEC_LABEL: "h"}}}
    assert one.parse(json.dumps(inspect), 0) == {"id": "g", "running": False, "status": "exited", "spec": "h",
                                                 "health": "unhealthy"}
    assert one.parse('{"message": "No such container: gitlab"}', 22) is None
    net = C.network_fact("default-network")
    assert net.parse('{"Driver": "overlay", "Attachable": true, "Scope": "swarm"}', 0) == {
        "driver": "overlay", "attachable": True, "scope": "swarm"}


def test_image_label_fact_reads_the_build_context_label():
    fact = C.image_label_fact("reg.lab:5000/demo:1", "swarmbook.context")
    assert fact.command.endswith("http://localhost/images/reg.lab:5000/demo:1/json")
    assert fact.parse(json.dumps({"Config": {"Labels": {"swarmbook.context": "abc"}}}), 0) == "abc"
    assert fact.parse(json.dumps({"Config": {"Labels": None}}), 0) == ""
    assert fact.parse('{"message": "No such image"}', 22) == ""
