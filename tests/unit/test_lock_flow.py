"""The cluster lock around a changing run (taskdef.cluster_lock), on the scripted pool: where it
is taken, and that a run whose lock host does not answer stops before sending anything anywhere
(issue 13 item 4), unless --no-lock asks to run unlocked."""

import pytest

from swarmbook import lock
from swarmbook.config import HostSpec
from swarmbook.report import refusal
from swarmbook.session import Result
from swarmbook.taskdef import Spec, cluster_lock, execute, exit_for

from .fakes import FakePool, make_run

TAKE = r"^if mkdir /run/swarmbook\.lock 2>/dev/null; then printf"
RELEASE = r"^if \[ -d /run/swarmbook\.lock \]; then current="
CHANGE = "touch /etc/changed"
LOCK_ANSWERS = {TAKE: Result(f"{lock.TAKEN}\n", "", 0), RELEASE: Result("", "", 0), "^touch /etc/changed$": Result("", "", 0)}
REFUSED = "cannot connect to root@{}:22: [Errno 111] Connection refused"


def change(h):
    h.change("change", CHANGE)


SPEC = Spec("t.change", change, "all", False, None)


def converge(pool, env, *, check=False, no_lock=False, specs=None):
    """What the task wrapper does: the lock around the body on every host of the group."""
    run, out = make_run(pool, env, check=check, task="t.change")
    specs = list(run.settings.group("all")) if specs is None else specs
    with cluster_lock(run, specs, no_lock=no_lock):
        execute(SPEC, run, specs)
    return run, out.getvalue()


def sent_on(pool):
    return [(conn.host, command.split(";")[0]) for conn, command in pool.on]


def test_the_lock_is_taken_on_the_first_manager_around_the_change():
    pool = FakePool(run=LOCK_ANSWERS)
    run, _ = converge(pool, "MANAGERS=m1,m2\nWORKERS=w1\n")
    assert [h for h, c in sent_on(pool) if c.startswith("if mkdir")] == ["m1"]
    commands = [c for c, _ in pool.sent]
    assert commands[0].startswith("if mkdir") and commands[-1].startswith("if [ -d /run/swarmbook.lock ]")
    assert commands.count(CHANGE) == 3 and not pool.lock_held and run.failed() == []


def test_an_unreachable_first_manager_moves_the_lock_to_the_next_that_answers():
    pool = FakePool(run=LOCK_ANSWERS, down={"m1": REFUSED.format("m1")})
    run, _ = converge(pool, "MANAGERS=m1,m2\nWORKERS=w1\n")
    assert [h for h, c in sent_on(pool) if c.startswith("if mkdir")] == ["m2"]
    assert sorted(h for h, c in sent_on(pool) if c == CHANGE) == ["m2", "w1"]
    assert run.failed() == ["m1"]  # the host itself fails in its step, as any unreachable host


def test_no_manager_answering_stops_the_run_before_any_command_anywhere():
    """The managers are set up in the same run and unreachable: the reachable worker gets nothing."""
    pool = FakePool(run=LOCK_ANSWERS, down={"m1": REFUSED.format("m1"), "m2": "cannot connect to root@m2:22: no answer (timed out)"})
    with pytest.raises(lock.Unreachable) as exc:
        converge(pool, "MANAGERS=m1,m2\nWORKERS=w1\n")
    assert pool.sent == []
    assert str(exc.value) == (
        "cluster lock not taken, nothing changed: no manager answered (cannot connect to root@m1:22: [Errno 111] "
        "Connection refused; cannot connect to root@m2:22: no answer (timed out)); rerun when one does, or with "
        "--no-lock to change the hosts without the lock")
    assert exc.value.exit_code == 3 and isinstance(exc.value, lock.Locked)


def test_without_managers_the_lock_goes_on_the_first_target_and_its_silence_stops_the_run():
    """`fab -H a,b docker.install` on new hosts with no MANAGERS: a down, b up and untouched."""
    pool = FakePool(run=LOCK_ANSWERS, down={"a": REFUSED.format("a")})
    with pytest.raises(lock.Unreachable, match=r"MANAGERS is empty, so the lock goes on the first target host, "
                                               r"which did not answer \(cannot connect to root@a:22: "):
        converge(pool, "", specs=[HostSpec("a", "root", 22), HostSpec("b", "root", 22)])
    assert pool.sent == [] and [h for h, _, _ in pool.connects if h == "b"]  # b was reached, and sent nothing


def test_the_stop_is_one_line_with_exit_code_3_and_one_json_object_with_json(capsys):
    exc = lock.Unreachable(lock.unreachable_message([REFUSED.format("m1")], managers=True))
    text = exit_for(exc, json_lines=False, title="docker.install")
    assert text.code == 3 and text.message == refusal(str(exc), json_lines=False)
    assert "\n" not in text.message and text.message.startswith("swarmbook: error: cluster lock not taken")
    as_json = exit_for(exc, json_lines=True, title="docker.install")
    assert as_json.code == 3 and as_json.message is None and capsys.readouterr().out.count("\n") == 1


def test_no_lock_runs_unlocked_on_the_hosts_that_answer_with_a_warning_line():
    pool = FakePool(run=LOCK_ANSWERS, down={"m1": REFUSED.format("m1")})
    run, out = converge(pool, "MANAGERS=m1\nWORKERS=w1\n", no_lock=True)
    assert [c for c, _ in pool.sent] == [CHANGE]  # on w1; no lock command anywhere
    assert out.splitlines()[0] == ("warning: --no-lock: running without the cluster lock; another operator's run "
                                   "may change these hosts at the same time")
    assert run.failed() == ["m1"]


@pytest.mark.parametrize("how", ["check", "read-only"])
def test_check_mode_and_read_only_tasks_take_no_lock_and_say_nothing(how):
    pool = FakePool(run=LOCK_ANSWERS, down={"m1": REFUSED.format("m1")})
    run, out = make_run(pool, "MANAGERS=m1\nWORKERS=w1\n", check=how == "check")
    with cluster_lock(run, list(run.settings.group("all")), enabled=how != "read-only"):
        pass
    assert pool.sent == [] and pool.connects == [] and out.getvalue() == ""
