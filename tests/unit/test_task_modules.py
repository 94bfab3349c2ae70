"""Task modules name each lazily loaded module after itself and import it for tools (issue 16).

A one-letter alias (`K` meaning four different modules in four files) broke "go to definition"
and static call graphs; the real import under TYPE_CHECKING gives them the module.
"""

import ast
from pathlib import Path

import pytest

TASKS = sorted((Path(__file__).resolve().parents[2] / "swarmbook" / "tasks").glob("*.py"))


def lazies(tree: ast.Module) -> dict[str, str]:
    """alias -> module of every `alias = lazy("swarmbook.module")`, wherever it is bound."""
    out = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", "") == "lazy"):
            out[node.targets[0].id] = node.value.args[0].value.removeprefix("swarmbook.")
    return out


def type_checking_imports(tree: ast.Module) -> dict[str, str]:
    """alias -> module of `from swarmbook import module [as alias]` under `if TYPE_CHECKING:`."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for imp in node.body:
                if isinstance(imp, ast.ImportFrom) and imp.module == "swarmbook":
                    out.update({a.asname or a.name: a.name for a in imp.names})
    return out


@pytest.mark.parametrize("path", TASKS, ids=[p.stem for p in TASKS])
def test_lazy_modules_are_named_after_themselves_and_imported_for_tools(path):
    tree = ast.parse(path.read_text())
    found = lazies(tree)
    short = {a: m for a, m in found.items() if len(a) <= 2}
    assert not short, f"{path.name}: name these after their module: {short}"
    assert type_checking_imports(tree) | found == type_checking_imports(tree), \
        f"{path.name}: import {sorted(set(found) - set(type_checking_imports(tree)))} under TYPE_CHECKING"


def test_the_check_sees_a_one_letter_alias():
    tree = ast.parse('K = lazy("swarmbook.stackcmd")\n')
    assert lazies(tree) == {"K": "stackcmd"} and type_checking_imports(tree) == {}
