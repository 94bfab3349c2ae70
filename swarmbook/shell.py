"""The one way to quote a command and the one way to mark a secret.

Every command that reaches a remote shell is built with :func:`join` (argv -> quoted
string) or :func:`script` (several such lines). A value that must stay secret is wrapped
in :class:`Secret`; it is sent on stdin, never in argv, and :class:`Masker` removes it from
every line the engine prints, logs or emits as JSON.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterable, Sequence


class Secret:
    """A secret value: its repr and str never show it; use ``.reveal()`` to get it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def quote(value: object) -> str:
    """Quote one argument for a POSIX shell. Secrets may not be quoted into commands."""
    if isinstance(value, Secret):
        raise TypeError("a Secret must be passed on stdin, never in a command line")
    return shlex.quote(str(value))


def join(argv: Sequence[object]) -> str:
    """argv list -> one safely quoted command string."""
    return " ".join(quote(a) for a in argv)


def script(lines: Iterable[str]) -> str:
    """Join already-built command strings into one remote script that stops at the first error."""
    return "set -e\n" + "\n".join(lines)


class Masker:
    """Replaces registered secret values with ``***`` in any text. Thread-safe."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._values: set[str] = set()
        for s in secrets:
            self.add(s)

    def add(self, value: str | Secret | None) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if value and len(value) >= 3:
            with self._lock:
                self._values.add(value)

    def __call__(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for v in values:
            text = text.replace(v, "***")
        return text
