"""The cluster lock's shell scripts, run for real under ``sh`` against a temporary folder that
stands in for /run: a second acquire fails naming the holder, a release by anyone but the
holder leaves the lock, a killed run's lock on this machine is taken over (README, Safety)."""

import getpass
import socket
import subprocess

import pytest

from swarmbook import lock
from swarmbook.session import Result


class LocalHost:
    """The slice of engine.Host the lock uses, running each command under sh on this machine."""

    name = "local"

    def __init__(self):
        self.notes: list[str] = []
        self.sent: list[str] = []

    def try_run(self, command, **_):
        self.sent.append(command)
        p = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)
        return Result(p.stdout, p.stderr, p.returncode)

    def note(self, text, level="info"):
        self.notes.append(text)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "swarm book.lock")  # a space: every use of the path must be quoted


def sh(command):
    return LocalHost().try_run(command)


def owner(path):
    res = sh(lock.owner_cmd(path))
    return res.stdout.strip() if res.rc == 0 else None


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


HERE = f"{getpass.getuser()}@{socket.gethostname()}"


def test_the_first_acquire_takes_the_lock_and_a_second_is_told_the_holder(path):
    assert sh(lock.acquire_cmd("alice@laptop pid 7 task a since t", path)).stdout == "TAKEN\n"
    second = sh(lock.acquire_cmd("bob@desk pid 9 task b since t", path))
    assert second.stdout == "alice@laptop pid 7 task a since t\n"
    assert owner(path) == "alice@laptop pid 7 task a since t"


def test_acquire_raises_locked_naming_the_holder_after_the_wait(path):
    sh(lock.acquire_cmd("alice@laptop pid 7 task stack.deploy since t", path))
    with pytest.raises(lock.Locked, match="cluster locked on local by alice@laptop pid 7 task stack.deploy") as exc:
        lock.acquire(LocalHost(), "docker.install", wait=0, path=path)
    assert exc.value.exit_code == 3
    assert owner(path) == "alice@laptop pid 7 task stack.deploy since t"  # the holder keeps it


def test_a_release_by_someone_else_leaves_the_lock(path):
    sh(lock.acquire_cmd("alice@laptop pid 7 task a since t", path))
    res = sh(lock.release_cmd("bob@desk pid 9 ", path))
    assert res.rc == 1 and "held by alice@laptop pid 7" in res.stderr
    assert owner(path) == "alice@laptop pid 7 task a since t"
    assert sh(lock.release_cmd("alice@laptop pid 70 ", path)).rc == 1  # a pid that only starts alike
    assert owner(path) is not None


def test_the_holder_releases_and_the_next_run_takes_it(path):
    sh(lock.acquire_cmd("alice@laptop pid 7 task a since t", path))
    assert sh(lock.release_cmd("alice@laptop pid 7 ", path)).rc == 0
    assert owner(path) is None
    assert sh(lock.release_cmd("alice@laptop pid 7 ", path)).rc == 0  # already free: nothing to do
    assert sh(lock.acquire_cmd("bob@desk pid 9 task b since t", path)).stdout == "TAKEN\n"


def test_a_run_releases_only_its_own_lock(path):
    """The run's lock was cleared (lock.release) and another run took it: the first run's end
    must not free the cluster under the second."""
    h = LocalHost()
    mine = lock.acquire(h, "docker.install", wait=0, path=path)
    assert mine.startswith(lock.holder_id() + " task docker.install since ") and owner(path) == mine
    sh(lock.release_cmd(mine, path))
    sh(lock.acquire_cmd("bob@desk pid 9 task b since t", path))
    lock.release(h, path=path)
    assert owner(path) == "bob@desk pid 9 task b since t"
    assert h.notes == ["cluster lock not released: held by bob@desk pid 9 task b since t"]
    sh(lock.release_cmd("bob@desk pid 9 task b since t", path))
    lock.acquire(h, "docker.install", wait=0, path=path)
    lock.release(h, path=path)
    assert owner(path) is None and h.notes[1:] == []


def test_a_killed_run_of_this_machine_is_taken_over(path):
    gone = f"{HERE} pid {dead_pid()} task bootstrap-all since t"
    sh(lock.acquire_cmd(gone, path))
    h = LocalHost()
    mine = lock.acquire(h, "docker.install", wait=0, path=path)
    assert owner(path) == mine != gone
    assert h.notes == [f"taking over the cluster lock left by a run that is gone: {gone}"]


@pytest.mark.parametrize("holder", [
    f"{HERE} pid {{live}} task bootstrap-all since t",  # this machine, process alive
    "ops@another-machine pid {dead} task bootstrap-all since t",  # a dead pid means nothing elsewhere
    "unknown",  # a lock folder without an owner file
])
def test_a_live_or_foreign_holder_is_never_taken_over(path, holder):
    live = subprocess.Popen(["sleep", "30"])
    try:
        text = holder.format(live=live.pid, dead=dead_pid())
        if text == "unknown":
            sh(f"mkdir {lock.quote(path)}")
        else:
            sh(lock.acquire_cmd(text, path))
        with pytest.raises(lock.Locked, match=f"by {text}"):
            lock.acquire(LocalHost(), "docker.install", wait=0, path=path)
        assert owner(path) == text
    finally:
        live.kill()
        live.wait()


def test_a_lock_without_its_owner_file_is_shown_and_released_as_unknown(path):
    """A run killed between mkdir and writing its name: lock.status and lock.release must see
    it (acquire reports it as held by "unknown"), or no run could ever take the lock again."""
    sh(f"mkdir {lock.quote(path)}")
    assert owner(path) == "unknown"
    assert lock.owner_fact(path).parse("unknown\n", 0) == "unknown"
    assert sh(lock.release_cmd("unknown", path)).rc == 0 and owner(path) is None


def test_owner_values_are_quoted_not_run(path, tmp_path):
    evil = f"x$(touch {tmp_path}/pwned)`touch {tmp_path}/pwned2`'; touch {tmp_path}/pwned3; '"
    assert sh(lock.acquire_cmd(evil, path)).stdout == "TAKEN\n"
    assert owner(path) == evil
    assert sh(lock.release_cmd(evil + "*", path)).rc == 1  # a glob in the holder is literal
    assert sh(lock.release_cmd(evil, path)).rc == 0
    assert not list(tmp_path.glob("pwned*"))


def test_lock_commands_exact_text():
    assert lock.acquire_cmd("a b") == ("if mkdir /run/swarmbook.lock 2>/dev/null; then printf '%s\\n' 'a b' > "
                                       "/run/swarmbook.lock/owner; echo TAKEN; else cat /run/swarmbook.lock/owner "
                                       "2>/dev/null || echo unknown; fi")
    assert lock.owner_cmd() == ("if [ -d /run/swarmbook.lock ]; then cat /run/swarmbook.lock/owner 2>/dev/null "
                                "|| echo unknown; else exit 1; fi")
    assert lock.release_cmd("a b") == (
        "if [ -d /run/swarmbook.lock ]; then current=$(cat /run/swarmbook.lock/owner 2>/dev/null || echo unknown); "
        "case \"$current\" in 'a b'*) gone=/run/swarmbook.lock.released.$$ && mv /run/swarmbook.lock \"$gone\" "
        "&& rm -rf \"$gone\";; *) echo \"held by $current\" >&2; exit 1;; esac; fi")
    assert lock.owner_fact().parse("", 1) is None


# --- lock.status / lock.release tasks (scripted pool) ------------------------------------------

def _lock_task(task, owner_answer, responses=None):
    import swarmbook.tasks.lock as TL

    from .fakes import FakePool, make_run

    pool = FakePool({lock.owner_fact(): owner_answer}, responses or {})
    run, out = make_run(pool, "MANAGERS=h1\n", task=f"lock.{task}")
    getattr(TL, task).body.__wrapped__(run, run.settings.group("managers"))
    return pool, run, out.getvalue()


def test_lock_status_names_the_holder_or_says_free():
    _, _, out = _lock_task("status", ("alice@laptop pid 7 task stack.deploy since t\n", 0))
    assert "cluster lock: alice@laptop pid 7 task stack.deploy since t" in out
    _, _, out = _lock_task("status", ("", 1))
    assert "cluster lock: free" in out


def test_lock_release_removes_only_the_lock_it_showed():
    held = "alice@laptop pid 7 task stack.deploy since t"
    pool, run, out = _lock_task("release", (held + "\n", 0), {r"^if \[ -d /run/swarmbook.lock \]": Result("", "", 0)})
    assert pool.changes() == [lock.release_cmd(held)] and run.failed() == [] and f"was {held}" in out
    pool, run, out = _lock_task("release", ("", 1))
    assert pool.changes() == [] and "already free" in out
    # someone took the lock between the look and the release: refused, the new holder keeps it
    pool, run, out = _lock_task("release", (held + "\n", 0), {r"^if \[ -d": Result("", "held by bob@desk pid 9\n", 1)})
    assert run.failed() == ["h1"] and "held by bob@desk pid 9" in out
