"""The task wrapper: fab's -H list, one run per fab invocation, help for every parameter."""

import pytest
from invoke import Context
from invoke.exceptions import Exit

from swarmbook import taskdef
from swarmbook.session import Pool
from swarmbook.tasks import ns


@pytest.mark.parametrize("argv, hosts", [
    (["fab", "-H", "a,b,c", "swarm.init"], ["a", "b", "c"]),
    (["fab", "--hosts=a,root@b:2222", "x"], ["a", "root@b:2222"]),
    (["fab", "-Ha", "-H", "b", "x"], ["a", "b"]),
    (["fab", "x"], []),
])
def test_fab_hosts(argv, hosts):
    assert taskdef._fab_hosts(argv) == hosts


def test_fab_claim_runs_a_task_once_per_invocation():
    pool = Pool()
    assert pool.claim_fab_call("docker.install", ("a", "b"))
    assert not pool.claim_fab_call("docker.install", ("a", "b"))
    assert pool.claim_fab_call("docker.mirrors", ("a", "b"))


def _all_tasks(coll, prefix=""):
    for name, t in coll.tasks.items():
        yield prefix + name, t
    for cname, sub in coll.collections.items():
        yield from _all_tasks(sub, prefix + cname + ".")


def test_every_task_has_a_summary_and_help_for_every_parameter():
    for name, t in _all_tasks(ns):
        assert t.__doc__ and t.__doc__.strip().splitlines()[0], name
        for arg in t.get_arguments():
            assert arg.help, f"{name} --{arg.name} has no help"


def test_missing_hosts_file_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWARMBOOK_ENV", raising=False)
    from swarmbook.tasks import docker
    with pytest.raises(Exit) as exc:
        docker.install(Context())
    assert exc.value.code == 2 and "hosts file hosts.env not found" in str(exc.value.message)


def test_unknown_group_or_bad_argument_is_refused_before_connecting(tmp_path, monkeypatch):
    env = tmp_path / "h.env"
    env.write_text("MANAGERS=127.0.0.1:9\n")  # loopback; the error must come before any connection
    env.chmod(0o600)
    from swarmbook.tasks import docker
    with pytest.raises(Exit) as exc:
        docker.install(Context(), env_file=str(env), method="pip")
    assert exc.value.code == 2 and "--method 'pip'" in exc.value.message


def test_stale_lock_only_when_same_machine_and_process_gone():
    from swarmbook import lock
    line = "root@ops-laptop pid 4242 task bootstrap-all since 2026-11-26T10:00:00+0000"
    assert lock.stale(line, here="ops-laptop", alive=lambda pid: False)
    assert not lock.stale(line, here="ops-laptop", alive=lambda pid: True)
    assert not lock.stale(line, here="other-machine", alive=lambda pid: False)
    assert not lock.stale("unknown", here="ops-laptop", alive=lambda pid: False)
