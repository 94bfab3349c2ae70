"""The engine with a scripted pool: hosts run in parallel, one host's failure leaves the others
going, the recap counts every step, check mode sends no change, JSON lines parse, long waits
report progress; and the idempotent primitives of swarmbook.ops (unit files, packages)."""

import json
import threading

import pytest
from invoke.exceptions import Exit

from swarmbook import facts as F
from swarmbook import ops, taskdef
from swarmbook.session import Result

from .fakes import ABSENT, FakePool, Unexpected, make_run

OK = Result("", "", 0)
TWO = "MANAGERS=h1,h2\n"


HAS_APP = {F.command_exists("app"): ("/usr/bin/app", 0)}


def two_step(h):
    if h.probe(F.command_exists("app"))["has:app"]:
        h.ok("app installed")
    h.change("step one", "echo one")
    h.change("step two", "echo two")


def spec_of(body, group="managers"):
    return taskdef.host_task(group=group)(body).body.swarmbook


def recap_rows(text: str) -> dict[str, dict[str, int]]:
    lines = text[text.index("\nRECAP "):].strip().splitlines()
    head = lines[1].split()
    assert head == ["host", "ok", "changed", "failed", "skipped"]
    return {cells[0]: dict(zip(head[1:], map(int, cells[1:]))) for cells in (ln.split() for ln in lines[2:])}


def test_one_host_failing_leaves_the_other_to_finish_and_the_run_exits_non_zero():
    def echo_two(command, host):
        return Result("", "No space left on device\n", 1) if host == "h2" else OK

    pool = FakePool(HAS_APP, {r"echo one": OK, r"echo two": echo_two})
    run, out = make_run(pool, TWO, task="t.two-step")
    taskdef.execute(spec_of(two_step), run, list(run.settings.group("managers")))
    with pytest.raises(Exit) as exc:
        taskdef.finish(run)
    assert exc.value.code == 1 and exc.value.message == "swarmbook: t.two-step failed on h2"
    text = out.getvalue()
    assert "h2               failed       t.two-step | failed: step two: No space left on device (exit 1)" in text
    assert recap_rows(text) == {"h1": {"ok": 1, "changed": 2, "failed": 0, "skipped": 0},
                                "h2": {"ok": 1, "changed": 1, "failed": 1, "skipped": 0}}
    assert [c for c, _ in pool.sent if "echo two" in c] == ["echo two", "echo two"]  # h1 was not stopped


def test_a_run_where_every_host_succeeds_exits_zero():
    pool = FakePool(HAS_APP, {r"echo": OK})
    run, out = make_run(pool, TWO, task="t.two-step")
    taskdef.execute(spec_of(two_step), run, list(run.settings.group("managers")))
    taskdef.finish(run)  # no Exit
    assert recap_rows(out.getvalue())["h2"] == {"ok": 1, "changed": 2, "failed": 0, "skipped": 0}


def test_hosts_run_in_parallel():
    """Each host's first command returns only once the other host has sent its own first
    command: run one host after the other and the barrier breaks (its timeout only stops a
    hang; nothing here measures time)."""
    both_started = threading.Barrier(2, timeout=30)

    def first(command, host):
        both_started.wait()
        return OK

    pool = FakePool(HAS_APP, {r"echo one": first, r"echo two": OK})
    run, out = make_run(pool, TWO)
    run.each(run.settings.group("managers"), two_step)
    assert run.failed() == [], out.getvalue()
    issued = [(c.host, cmd) for c, cmd in pool.on if "@@" not in cmd]
    assert sorted(issued[:2]) == [("h1", "echo one"), ("h2", "echo one")]


def test_check_mode_probes_but_sends_no_change():
    pool = FakePool(HAS_APP, {})  # any change command would be unexpected
    run, out = make_run(pool, TWO, check=True)
    run.each(run.settings.group("managers"), two_step)
    run.recap()
    assert pool.changes() == [] and pool.commands_run == 2  # one probe per host
    text = out.getvalue()
    assert text.count("would change") == 4 and "(check mode: nothing changed)" in text
    assert recap_rows(text)["h1"]["changed"] == 2


def test_json_lines_parse_and_end_with_the_recap():
    pool = FakePool(HAS_APP, {r"echo one": OK, r"echo two": lambda c, h: Result("", "boom", 1) if h == "h1" else OK})
    run, out = make_run(pool, TWO, json_lines=True, task="t.j")
    run.each(run.settings.group("managers"), two_step)
    run.recap()
    objs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {o["event"] for o in objs[:-1]} == {"step"}
    assert {(o["host"], o["step"], o["status"]) for o in objs[:-1]} >= {("h1", "failed", "failed"),
                                                                       ("h2", "step two", "changed")}
    assert objs[-1]["event"] == "recap" and objs[-1]["task"] == "t.j"
    assert objs[-1]["hosts"]["h1"]["failed"] == 1 and objs[-1]["hosts"]["h2"]["changed"] == 2


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


def test_long_wait_prints_progress_every_ten_seconds():
    clock = FakeClock()
    run, out = make_run(FakePool(), clock=clock, sleep=clock.sleep)
    run.each(run.settings.group("managers"), lambda h: h.wait("swarm", lambda: clock.now >= 1025, timeout=120))
    lines = [ln for ln in out.getvalue().splitlines() if "waiting for" in ln]
    assert lines == ["h1               waiting for swarm (10s of 120s)",
                     "h1               waiting for swarm (20s of 120s)"]
    assert run.failed() == [] and clock.sleeps == 25


def test_wait_gives_up_at_its_timeout_as_a_failed_step():
    clock = FakeClock()
    run, out = make_run(FakePool(), clock=clock, sleep=clock.sleep)
    run.each(run.settings.group("managers"), lambda h: h.wait("swarm", lambda: False, timeout=30))
    assert run.failed() == ["h1"] and "swarm: not ready after 30s" in out.getvalue()
    assert out.getvalue().count("waiting for swarm") == 3


def test_quick_wait_prints_nothing():
    clock = FakeClock()
    run, out = make_run(FakePool(), clock=clock, sleep=clock.sleep)
    run.each(run.settings.group("managers"), lambda h: h.wait("swarm", lambda: clock.now >= 1005))
    assert "waiting" not in out.getvalue() and run.failed() == []


@pytest.mark.parametrize("pool", [FakePool({}, {}), FakePool(HAS_APP, {r"echo one": OK})], ids=["fact", "command"])
def test_the_fake_pool_fails_the_test_on_anything_unscripted(pool):
    """The engine turns a host body's exception into a failed host; the fake's surprise must
    escape that, or a test that forgets run.failed() would pass on a wrong command."""
    run, _ = make_run(pool)
    with pytest.raises(Unexpected):
        run.each(run.settings.group("managers"), two_step)


def test_the_fake_pool_answers_a_fact_only_for_its_real_command():
    """A fact of the right name built from another path (or unit, or format) must fail the test:
    matching by name alone let a task probe the wrong file and still pass."""
    pool = FakePool({F.file_state("/etc/app.conf", "conf"): ("root root 644\nx", 0)})
    run, _ = make_run(pool)
    with pytest.raises(Unexpected, match="fact conf: the task sent\n  test -f /etc/other.conf"):
        run.each(run.settings.group("managers"), lambda h: h.probe(F.file_state("/etc/other.conf", "conf")))
    got = []
    run.each(run.settings.group("managers"), lambda h: got.append(h.probe(F.file_state("/etc/app.conf", "conf"))))
    assert got == [{"conf": {"owner": "root", "group": "root", "mode": "644", "content": "x"}}]


def test_the_fake_pool_answers_a_non_root_hosts_sudo_wrapped_probe():
    pool = FakePool({F.user_groups("ops"): ("ops docker", 0)})
    run, _ = make_run(pool, "MANAGERS=ops@h1\n")
    got = []
    run.each(run.settings.group("managers"), lambda h: got.append(h.probe(F.user_groups("ops"))))
    assert got == [{"groups:ops": {"ops", "docker"}}] and pool.sent[0][0].startswith("sudo -n sh -c ")


def test_the_fake_pool_refuses_facts_scripted_by_name():
    with pytest.raises(TypeError, match="by the Fact its builder makes"):
        FakePool({"has:app": ("/usr/bin/app", 0)})


# --- ops: idempotent primitives ------------------------------------------------------

UNIT = "/etc/systemd/system/app.service.d/swarmbook.conf"
CONTENT = "[Service]\nEnvironment=MODE=swarm\n"
RUNNING = ("ActiveState=active\nUnitFileState=enabled\n", 0)
STOPPED = ("ActiveState=inactive\nUnitFileState=disabled\n", 0)
FRESH = ("1700000100 no 1700000000", 0)  # started after the file's mtime, no reload pending


def unit_facts(file=("root root 644\n" + CONTENT, 0), unit=RUNNING, stale=FRESH):
    facts = ops.unit_facts(UNIT, "app")  # the file, the unit's state, whether it runs older files
    return dict(zip(facts, (file, unit, stale)))


def ensure_app_unit(pool, check=False):
    run, out = make_run(pool, check=check)
    got = []
    run.each(run.settings.group("managers"), lambda h: got.append(ops.ensure_unit(h, UNIT, CONTENT, "app")))
    assert run.failed() == [], out.getvalue()
    return got[0], out.getvalue()


def test_ensure_unit_unchanged_writes_nothing_and_does_not_restart():
    pool = FakePool(unit_facts())
    changed, out = ensure_app_unit(pool)
    assert changed is False and pool.changes() == [] and pool.commands_run == 1


def test_ensure_unit_changed_writes_once_then_restarts_once():
    pool = FakePool(unit_facts(file=("root root 644\n[Service]\nEnvironment=MODE=old\n", 0)),
                    {r"cat > \"\$tmp\"": OK, r"systemctl restart": OK})
    changed, out = ensure_app_unit(pool)
    write, restart = pool.changes()
    assert UNIT in write and dict(pool.sent)[write] == CONTENT
    assert restart == ("systemctl daemon-reload && { systemctl reset-failed app 2>/dev/null; "
                       "systemctl restart app; }")
    assert changed is True and f"{UNIT} changed" in out


def test_ensure_unit_new_file_on_a_stopped_unit_starts_it_once_without_a_restart():
    pool = FakePool(unit_facts(file=ABSENT, unit=STOPPED, stale=ABSENT),
                    {r"cat > \"\$tmp\"": OK, r"enable --now app": OK})
    changed, out = ensure_app_unit(pool)
    assert len(pool.changes()) == 2 and not any("restart" in c for c in pool.changes())


def test_ensure_unit_restarts_a_unit_still_running_with_older_files():
    pool = FakePool(unit_facts(stale=("1700000000 yes 1700000000", 0)), {r"systemctl restart app": OK})
    changed, out = ensure_app_unit(pool)
    assert changed is True and len(pool.changes()) == 1 and "not applied yet" in out


def test_ensure_unit_check_mode_sends_nothing():
    pool = FakePool(unit_facts(file=ABSENT))
    changed, out = ensure_app_unit(pool, check=True)
    assert changed is True and pool.changes() == [] and out.count("would change") == 2


def test_ensure_unit_quotes_the_unit_name():
    file, unit, stale = ops.unit_facts(UNIT, "app;reboot")
    pool = FakePool({file: ("root root 644\n" + CONTENT, 0), unit: RUNNING, stale: ("1 yes 0", 0)},
                    {r"systemctl restart": OK})
    run, _ = make_run(pool)
    run.each(run.settings.group("managers"), lambda h: ops.ensure_unit(h, UNIT, CONTENT, "app;reboot"))
    restart, = pool.changes()
    assert "systemctl restart 'app;reboot'" in restart and "restart app;" not in restart


@pytest.mark.parametrize("family, packages, installed, command", [
    ("debian", ["docker.io"], set(),
     "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends docker.io || "
     "{ apt-get update -q && apt-get install -y -q --no-install-recommends docker.io; }"),
    ("rhel", ["docker", "git"], {"git"}, "yum install -y docker"),
    ("debian", ["curl", "git"], {"curl", "git"}, None),
    ("rhel", ["curl"], {"curl"}, None),
])
def test_ensure_packages_installs_only_what_is_missing(family, packages, installed, command):
    pool = FakePool({}, {r"apt-get install|yum install": OK})
    run, out = make_run(pool)
    got = []
    run.each(run.settings.group("managers"),
             lambda h: got.append(ops.ensure_packages(h, family, packages, installed=installed)))
    assert pool.changes() == ([command] if command else []) and got == [command is not None]


def test_ensure_packages_on_an_unknown_family_fails_the_host():
    run, out = make_run(FakePool())
    run.each(run.settings.group("managers"), lambda h: ops.ensure_packages(h, "plan9", ["x"], installed=set()))
    assert run.failed() == ["h1"] and "unsupported OS family 'plan9'" in out.getvalue()


def test_an_empty_probe_costs_no_round_trip():
    pool = FakePool()
    run, _ = make_run(pool)
    got = []
    run.each(run.settings.group("managers"), lambda h: got.append(h.probe()))
    assert got == [{}] and pool.commands_run == 0


def _needs_app(h):
    if not h.probe(F.command_exists("app"))["has:app"]:
        h.needs("app", "app is not installed (run app.install first)")
    h.change("configure app", "echo configure")


NO_APP = {F.command_exists("app"): ("", 1)}


def test_a_missing_prerequisite_fails_a_changing_run():
    pool = FakePool(NO_APP, {})
    run, out = make_run(pool, TWO, task="t.needs")
    run.each(run.settings.group("managers"), _needs_app)
    assert sorted(run.failed()) == ["h1", "h2"]
    assert "failed: app: app is not installed (run app.install first)" in out.getvalue()
    assert not [c for c, _ in pool.sent if "echo" in c]


def test_a_missing_prerequisite_is_skipped_in_check_mode_where_an_earlier_task_would_make_it():
    """bootstrap-all --check on new hosts: the step that would install it comes earlier, so a
    later step has nothing to probe yet; skipped, not failed, and the run goes on."""
    pool = FakePool(NO_APP, {})
    run, out = make_run(pool, TWO, task="t.needs", check=True)
    run.each(run.settings.group("managers"), _needs_app)
    taskdef.finish(run)  # no Exit: nothing failed
    text = out.getvalue()
    assert "skipped      t.needs | not yet: app: app is not installed (run app.install first)" in text, text
    assert recap_rows(text)["h1"] == {"ok": 0, "changed": 0, "failed": 0, "skipped": 1}


OUT_OF_SEQUENCE = Result("", "Error response from daemon: rpc error: code = Unknown desc = update out of sequence\n", 1)


def _answers(*results):
    """A response that answers with ``results`` in turn (the last one for ever after)."""
    left = list(results)
    return lambda command, host: left.pop(0) if len(left) > 1 else left[0]


def _promote(h):
    h.change("promote to manager", "docker node promote n3")


def test_a_write_swarm_refused_as_out_of_sequence_is_sent_again_and_reported_once():
    """Measured in CI: `docker node promote h2 h3` right after a demotion read "update out of
    sequence" (the node object changed under it); swarm wrote nothing, so sending it again is safe."""
    from swarmbook.engine import CONFLICT_TRIES
    pool = FakePool(run={r"^docker node promote n3$": _answers(OUT_OF_SEQUENCE, OK)})
    slept = []
    run, out = make_run(pool, json_lines=True, sleep=slept.append)
    taskdef.execute(spec_of(_promote), run, list(run.settings.group("managers")))
    assert run.failed() == [] and pool.changes() == ["docker node promote n3"] * 2 and slept == [1]
    events = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(e["step"], e["status"]) for e in events if e.get("event") == "step"] == [("promote to manager", "changed")]
    said = [e["text"] for e in events if e.get("event") == "warning"]
    assert len(said) == 1 and "'update out of sequence'" in said[0] and f"(2 of {CONFLICT_TRIES})" in said[0]


def test_a_write_still_out_of_sequence_after_the_last_try_fails_the_host_with_swarms_words():
    from swarmbook.engine import CONFLICT_TRIES
    pool = FakePool(run={r"^docker node promote n3$": OUT_OF_SEQUENCE})
    run, out = make_run(pool, sleep=lambda s: None)
    taskdef.execute(spec_of(_promote), run, list(run.settings.group("managers")))
    assert run.failed() == ["h1"] and len(pool.changes()) == CONFLICT_TRIES
    assert "promote to manager: Error response from daemon: rpc error: code = Unknown desc = update out of sequence" in out.getvalue()


def test_any_other_failure_is_not_sent_again():
    refused = Result("", "Error response from daemon: node n3 not found\n", 1)
    pool = FakePool(run={r"^docker node promote n3$": refused})
    run, out = make_run(pool, sleep=lambda s: pytest.fail("slept before a retry it should not make"))
    taskdef.execute(spec_of(_promote), run, list(run.settings.group("managers")))
    assert run.failed() == ["h1"] and pool.changes() == ["docker node promote n3"]
