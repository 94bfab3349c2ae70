"""Turn a body into an Invoke task that works under ``inv`` (group from hosts.env) and
``fab -H a,b`` (the given hosts), with ``--env-file``, ``--check`` and ``--json`` on every task
and ``--no-lock`` on every changing one.

Two shapes:
- :func:`host_task`: ``body(h: Host, **params)`` runs on each host of ``group`` in parallel.
- :func:`cluster_task`: ``body(run: Run, specs: list[HostSpec], **params)`` orchestrates
  across hosts itself (init the first manager, then join the rest).
Bad input raises ConfigError before any connection (one line, or with ``--json`` one JSON
object on stdout); failed hosts make the exit code 1.

Flags are the same on every task: ``-h``/``--help`` is always help, and the common options have
one short flag each everywhere (:data:`SHORT_FLAGS`); no other parameter gets one. Invoke's
default gives each parameter the first free letter of its name, so a task with ``--hostname``
took ``-h``, and one with ``--context`` pushed ``--check`` to ``-h`` (issue 13 item 6).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from invoke import Task, task
from invoke.exceptions import Exit

from .errors import ConfigError, SwarmbookError

COMMON_HELP = {
    "env-file": "hosts file to use (default: $SWARMBOOK_ENV, else ./hosts.env)",
    "check": "probe only: print what would change and change nothing",
    "json": "print JSON lines (one per step, then a recap) instead of text",
}
LOCK_HELP = {  # on changing tasks only (read-only ones take no lock)
    "no-lock": "change the hosts without the cluster lock (when no manager answers); says so in a "
               "warning line: another operator's run may then change the same hosts at once",
}
# The only short flags: the same on every task. --no-lock has none on purpose (type it out).
SHORT_FLAGS = {"env_file": "e", "check": "c", "json": "j"}
HELP_WORDS = ("-h", "--help")


class SwarmbookTask(Task):
    """An Invoke Task that is cheap to deep-copy.

    Invoke deep-copies every task each time a collection is nested and again when it parses
    the command line. Ours carry an immutable ``inspect.Signature`` and :class:`Spec`, whose
    generic deep copy was half of ``inv --list`` (16 000 copy calls for 60 tasks). A shallow
    copy with fresh copies of the containers Invoke may change gives the same independence.
    """

    def __deepcopy__(self, memo: dict) -> SwarmbookTask:
        new = copy.copy(self)
        for attr in ("positional", "iterable", "incrementable", "pre", "post"):
            setattr(new, attr, copy.deepcopy(getattr(self, attr), memo))
        new.help = dict(self.help)
        return new

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list:
        """Invoke's arguments of this task, leaving its help in place (Invoke pops each entry as it
        reads it, so a second read, e.g. a task showing its own help, had none)."""
        kept = dict(self.help)
        try:
            return super().get_arguments(ignore_unknown_help)
        finally:
            self.help = kept

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        """Invoke's options for one parameter, with two changes:

        - the short flag of :data:`SHORT_FLAGS` or none (never one picked from the name's
          letters, whatever ``auto_shortflags`` says);
        - integer options are read as text and checked by :func:`whole_numbers`: Invoke's own
          ``int()`` ends a typo such as ``--timeout abc`` in a traceback.
        """
        opts = super().arg_opts(name, default, taken_names)
        opts["names"] = [opts["names"][0], *SHORT_FLAGS.get(name, "")]
        if opts.get("kind") is int:
            opts["kind"] = str
        return opts


FAB_PROGRAMS = ("fab", "swarmbook")  # Fabric's programs: -H runs a task once per host (swarmbook.cli)


def _fab_hosts(argv: list[str]) -> list[str]:
    """The -H/--hosts list fab was given (fab runs a task once per host; we run it once)."""
    hosts: list[str] = []
    for i, a in enumerate(argv):
        if a in ("-H", "--hosts") and i + 1 < len(argv):
            hosts += argv[i + 1].split(",")
        elif a.startswith("--hosts="):
            hosts += a.split("=", 1)[1].split(",")
        elif a.startswith("-H") and len(a) > 2:
            hosts += a[2:].split(",")
    return [h for h in hosts if h]


def targets(c: Any, group: str, env_file: str | None, title: str = ""):
    """(settings, specs, ssh key, first_call) for this invocation, from fab's -H or hosts.env."""
    from . import config
    from .session import POOL

    if hasattr(c, "host") and hasattr(c, "connect_kwargs"):  # fabric Connection: fab -H
        settings = config.load(env_file, required=bool(env_file or os.environ.get("SWARMBOOK_ENV")))
        under_fab = os.path.basename(sys.argv[0]) in FAB_PROGRAMS
        this = config.HostSpec(c.host, c.user, int(c.port))
        user, port = c.config.get("user") or c.user, int(c.config.get("port") or 22)
        specs = [config.parse_host(h, user=user, port=port, what="fab -H")
                 for h in (_fab_hosts(sys.argv) if under_fab else [])]
        if (this.host, this.port) not in {(s.host, s.port) for s in specs}:
            specs = [this]  # called with a Connection from someone's own runbook: just that host
        keys = c.connect_kwargs.get("key_filename") or []
        key = (keys[0] if isinstance(keys, list) and keys else keys) or settings["SSH_KEY"]
        ident = tuple(f"{s.user}@{s.host}:{s.port}" for s in specs)
        first = POOL.claim_fab_call(title, ident) if under_fab else True
        return settings, specs, key, first
    settings = config.load(env_file)
    return settings, list(settings.group(group)), settings["SSH_KEY"], True


@dataclass(frozen=True)
class Spec:
    """What a task is, apart from Invoke: so bootstrap-all can run tasks in one reporter."""

    title: str
    body: Callable
    group: str
    cluster: bool
    validate: Callable | None
    locks: bool = True  # a changing task: takes the cluster lock, offers --no-lock


def execute(spec: Spec, run, specs: list, args: tuple = (), kwargs: dict | None = None) -> None:
    """Run a task body on ``specs`` within an existing Run (no exit handling)."""
    kwargs = kwargs or {}
    if not specs:
        run.reporter.note(f"{spec.title}: group {spec.group!r} is empty in {run.settings.source}; skipped")
    elif spec.cluster:
        spec.body(run, specs, *args, **kwargs)
    else:
        run.each(specs, lambda h: spec.body(h, *args, **kwargs))


def exit_for(exc: Exception, *, json_lines: bool, title: str) -> Exit:
    """How a run stopped outside any host's steps ends: bad input or a refusal is one line (or
    one JSON object) with its exit code; a bug is one line too, exit 1, unless SWARMBOOK_DEBUG=1
    asks for the traceback (then ``exc`` is raised again)."""
    from .report import refusal

    if isinstance(exc, SwarmbookError):
        return Exit(refusal(str(exc), json_lines=json_lines), code=exc.exit_code)
    if os.environ.get("SWARMBOOK_DEBUG") == "1":
        raise exc
    return Exit(refusal(f"{type(exc).__name__}: {exc} (SWARMBOOK_DEBUG=1 shows the traceback)",
                        json_lines=json_lines, label=f"internal error in {title}"), code=1)


def whole_numbers(params: list[inspect.Parameter], kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the integer options (an int default) given as text made ints, or one line
    naming the option (``--timeout: 'abc' is not a whole number``)."""
    from .validate import whole

    out = dict(kwargs)
    for p in params:
        if isinstance(p.default, int) and not isinstance(p.default, bool) and isinstance(out.get(p.name), str):
            out[p.name] = whole(out[p.name], "--" + p.name.strip("_").replace("_", "-"))
    return out


def modes(check: bool, json: bool) -> tuple[bool, bool]:
    """--check / --json, or SWARMBOOK_CHECK=1 / SWARMBOOK_JSON=1."""
    return (check or os.environ.get("SWARMBOOK_CHECK") == "1", json or os.environ.get("SWARMBOOK_JSON") == "1")


@contextlib.contextmanager
def cluster_lock(run, specs: list, *, enabled: bool = True, no_lock: bool = False):
    """Hold the cluster lock around a changing run: on the first manager that answers, or, with
    MANAGERS empty (``fab -H`` on new hosts), on the first target host.

    When none answers, the run stops here, before any change, with
    :class:`~swarmbook.lock.Unreachable` (one line naming each host tried and why; exit code 3,
    as for a lock another run holds). ``no_lock`` (``--no-lock``) runs unlocked with a warning line.
    """
    from . import lock
    from .session import ConnectFailed

    if not enabled or run.check or run.pool.lock_held or not specs:
        yield
        return
    if no_lock:
        run.reporter.note("--no-lock: running without the cluster lock; another operator's run may "
                          "change these hosts at the same time", level="warning")
        yield
        return
    candidates = list(run.settings.group("managers")) or specs[:1]
    down = run.warm([*specs, *(c for c in candidates if c not in specs)])
    holder, tried = None, []
    for spec in candidates:
        if spec in down:
            tried.append(down[spec])
            continue
        try:
            holder = run.open(spec)
            break
        except ConnectFailed as exc:
            tried.append(str(exc))
    if holder is None:
        raise lock.Unreachable(lock.unreachable_message(tried, managers=bool(run.settings.group("managers"))))
    lock.acquire(holder, run.task, wait=run.settings["LOCK_WAIT"])
    run.pool.lock_held = True
    try:
        yield
    finally:
        run.pool.lock_held = False
        lock.release(holder)


def show_help(t: Task, title: str) -> None:
    """Print what ``inv --help TITLE`` prints for task ``t``.

    For a task with a positional parameter, Invoke's parser takes ``inv stack.deploy -h`` as the
    stack named ``-h`` (a missing positional is filled before core flags are looked at), so the
    task itself must show its help.
    """
    from invoke import Collection, Program

    area = title.rpartition(".")[0]
    root = Collection(Collection(area, t)) if area else Collection(t)
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "inv"
    binary = "inv[oke]" if called in ("inv", "invoke") else called  # as Invoke's own help names itself
    Program(namespace=root, binary=binary).run([binary, "--help", title], exit=False)


def finish(run) -> None:
    """Recap, then exit non-zero naming the failed hosts."""
    run.recap()
    failed = run.failed()
    if failed:
        raise Exit(f"swarmbook: {run.task} failed on {', '.join(failed)}", code=1)


def _wrap(body: Callable, *, group: str, cluster: bool, help: dict[str, str], name: str | None,
          validate: Callable | None, positional: list[str] | None = None, locks: bool = True):
    sig = inspect.signature(body)
    params = list(sig.parameters.values())[2 if cluster else 1:]
    common = [("env_file", None), ("check", False), ("json", False)] + ([("no_lock", False)] if locks else [])
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in common]
    ctx = inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    task_name = name or body.__name__.replace("_", "-")
    # the area is the module's name, or its AREA where a collection's tasks live in two modules
    area = getattr(sys.modules.get(body.__module__), "AREA", None) or body.__module__.rsplit(".", 1)[-1]
    spec = Spec(f"{area}.{task_name}", body, group, cluster, validate, locks)

    @functools.wraps(body)
    def wrapper(c, *args, env_file=None, check=False, json=False, no_lock=False, **kwargs):
        from .engine import Run
        from .report import Reporter

        if any(v in HELP_WORDS for v in (*args, *(kwargs.get(p) for p in positional or ()))):
            show_help(made, spec.title)  # `inv stack.deploy -h`: Invoke read -h as the stack's name
            raise Exit(code=0)
        check, json = modes(check, json)
        try:
            settings, specs, key, first = targets(c, group, env_file, spec.title)
            if not first:
                return None  # fab: this host was covered by the first call
            kwargs = whole_numbers(params, kwargs)
            if validate is not None:
                # bad input: refused before any host is touched (a validator may ask for the targets)
                extra = {"targets": specs} if "targets" in inspect.signature(validate).parameters else {}
                validate(settings, *args, **kwargs, **extra)
            reporter = Reporter(json_lines=json)
            for w in settings.warnings:
                reporter.note(w, level="warning")
            run = Run(spec.title, settings, reporter, check=check, key=key)
            with cluster_lock(run, specs, enabled=locks, no_lock=no_lock):
                execute(spec, run, specs, args, kwargs)
        except Exception as exc:
            raise exit_for(exc, json_lines=json, title=spec.title) from None
        finish(run)
        return None

    wrapper.__signature__ = sig.replace(parameters=[ctx, *params, *extra])  # type: ignore[attr-defined]
    wrapper.swarmbook = spec  # type: ignore[attr-defined]
    if validate is not None:  # the validator must accept every parameter of the task
        inspect.signature(validate).bind(None, **{p.name: p.default for p in params})
    missing = [p.name for p in params if p.name.strip("_").replace("_", "-") not in help and p.name not in help]
    if missing:
        raise TypeError(f"task {task_name}: help missing for {missing}")
    made = task(wrapper, name=task_name, help={**COMMON_HELP, **(LOCK_HELP if locks else {}), **help},
                positional=positional or [], klass=SwarmbookTask)
    return made


def host_task(*, group: str, help: dict[str, str] | None = None, name: str | None = None,
              validate: Callable | None = None, positional: list[str] | None = None, locks: bool = True):
    """Decorate ``body(h, **params)``: runs on every host of ``group`` in parallel.

    ``validate(settings, **params)`` runs first and refuses bad input before any connection.
    ``locks=False`` marks a read-only task: it takes no cluster lock and has no ``--no-lock``.
    """
    return lambda body: _wrap(body, group=group, cluster=False, help=help or {}, name=name,
                              validate=validate, positional=positional, locks=locks)


def cluster_task(*, group: str, help: dict[str, str] | None = None, name: str | None = None,
                 validate: Callable | None = None, positional: list[str] | None = None, locks: bool = True):
    """Decorate ``body(run, specs, **params)``: the body orchestrates across the hosts itself."""
    return lambda body: _wrap(body, group=group, cluster=True, help=help or {}, name=name,
                              validate=validate, positional=positional, locks=locks)


def require(settings, *keys: str) -> None:
    """Refuse when a needed setting is empty; secrets get the hint that the environment may hold them."""
    from .shell import Secret

    for key in keys:
        if not settings[key]:
            if isinstance(settings[key], Secret):
                refuse(f"{key} is empty (set it in the environment or {settings.source})")
            refuse(f"{key} is empty in {settings.source}")


def refuse(message: str) -> None:
    """Refuse bad input with one clear line (before any host is touched)."""
    raise ConfigError(message)
