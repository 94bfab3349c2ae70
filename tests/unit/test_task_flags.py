"""Help is help, and flags are the same on every task (issue 13 item 6).

Invoke's default short flags are the first free letter of each parameter's name, so they
differed by task: `gitlab.up --hostname` took `-h`, `image.build-push --context` pushed `--check`
to `-h` (`image.build-push -h` ran the task in check mode), and a task with a positional
parameter took `-h` as its value (`inv stack.deploy -h` deployed a stack named "-h").
Every task of the root namespace is walked; nothing may run.
"""

import io
import os
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from invoke import Program

import swarmbook.config
import swarmbook.tasks.lab
from swarmbook import taskdef
from swarmbook.tasks import ns

REPO = Path(__file__).resolve().parents[2]
COMMON = {"env-file": ("e",), "check": ("c",), "json": ("j",), "no-lock": ()}  # long name -> short flags
READ_ONLY = {"swarm.status", "lock.status", "lock.release", "doctor"}  # locks=False: no lock, no --no-lock
LOCAL = {"backup.cron"}  # changes only this machine (its /etc/cron.d): no cluster lock, no --no-lock


def _walk(coll, prefix=""):
    for name, t in coll.tasks.items():
        yield prefix + name, t
    for cname, sub in coll.collections.items():
        yield from _walk(sub, prefix + cname + ".")


TASKS = dict(_walk(ns))


class Ran(BaseException):
    """A task body started: -h ran the task (escapes the wrapper's error handling and Invoke's)."""


@pytest.fixture
def nothing_runs(monkeypatch):
    def ran(*a, **k):
        raise Ran("the task ran")

    monkeypatch.setattr(sys, "argv", ["inv"])  # the program a task's own help names
    monkeypatch.setattr(taskdef, "targets", ran)  # every host_task / cluster_task
    monkeypatch.setattr(swarmbook.config, "load", ran)  # bootstrap-all
    monkeypatch.setattr(swarmbook.tasks.lab, "_lab", ran)  # lab.*


def _inv(*argv: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        Program(namespace=ns, binary="inv[oke]").run(["inv", *argv], exit=False)
    return out.getvalue()


def test_the_walk_sees_every_area():
    assert len(TASKS) > 35 and {"bootstrap-all", "doctor", "docker.install", "stack.deploy", "lab.up",
                                "lab.status", "gitlab.up", "image.build-push", "runner.register"} <= set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_flag_after_any_task_prints_its_help_and_runs_nothing(nothing_runs, name, flag):
    expected = _inv("--help", name)  # Invoke's own per-task help
    assert expected.startswith(f"Usage: inv[oke] [--core-opts] {name} ") and "Docstring:" in expected
    assert _inv(name, flag) == expected


@pytest.mark.parametrize("name", sorted(TASKS))
def test_common_options_have_the_same_short_flag_everywhere_and_nothing_else_has_one(name):
    t = TASKS[name]
    args = {a.names[0]: tuple(a.names[1:]) for a in t.get_arguments()}
    for long, shorts in args.items():
        if long in COMMON:
            assert shorts == COMMON[long], f"{name} --{long}: short flags {shorts}, elsewhere {COMMON[long]}"
        else:
            assert shorts == (), f"{name} --{long} has short flag(s) {shorts}: only {sorted(COMMON)} may"
    if name.startswith("lab."):
        assert not {"env-file", "check", "no-lock"} & set(args)
        return
    assert {"env-file", "check", "json"} <= set(args), name
    assert ("no-lock" in args) == (name not in READ_ONLY | LOCAL), name  # every changing task, only those


def test_read_only_tasks_are_the_ones_that_take_no_lock():
    wrapped = {name: t.body.swarmbook.locks for name, t in TASKS.items() if hasattr(t.body, "swarmbook")}
    assert {name for name, locks in wrapped.items() if not locks} == READ_ONLY


def test_lab_status_takes_json():
    assert [a.names for a in TASKS["lab.status"].get_arguments()] == [("json", "j")]


@pytest.mark.parametrize("argv", [
    ["inv", "image.build-push", "-h"],  # -h was --check (--context took -c)
    ["inv", "runner.register", "-h"],  # -h was --check (--clone-url -c, --executor -e, --env-file -v)
    ["inv", "gitlab.up", "-h"],  # -h was --hostname (an error: it needed a value)
    ["inv", "stack.deploy", "-h"],  # -h was the stack's name
    ["inv", "cron.install", "--help"],
    ["inv", "lab.status", "-h"],
    ["fab", "net.migrate", "-h"],
])
def test_real_command_line_help(argv, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARMBOOK_")}
    env["SWARMBOOK_ENV"] = str(tmp_path / "missing.env")  # a run would stop on it: exit 2
    p = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", (p.returncode, p.stderr)
    assert p.stdout.startswith(f"Usage: {'inv[oke]' if argv[0] == 'inv' else 'fab'} [--core-opts] {argv[1]} ")
    assert ("-j, --json" in p.stdout) and ("-c, --check" in p.stdout) == (argv[1] != "lab.status"), p.stdout
