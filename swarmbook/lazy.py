"""Modules loaded on first use, so that `inv --list` and `fab --list` (which load every task
module) do not also load the command builders, the engine and the SSH stack that only a
running task needs.

``facts = lazy("swarmbook.facts")`` binds a stand-in; the first ``facts.name`` imports the module
through :func:`importlib.import_module` (whose module locks make this safe from the worker
threads of a run) and every later access goes straight to it. Python 3.11's
``importlib.util.LazyLoader`` is not safe when several threads touch the module first
(fixed in 3.12, gh-114763), hence this small stand-in.

Task modules bind each stand-in under the module's own name, with the real import beside it
for editors and type checkers (``if TYPE_CHECKING: from swarmbook import facts`` / ``else:
facts = lazy("swarmbook.facts")``), so "go to definition" and static call graphs reach the
builders (tests/unit/test_task_modules.py keeps it so).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:  # only called for names not on the stand-in itself
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first attribute access."""
    return LazyModule(name)
