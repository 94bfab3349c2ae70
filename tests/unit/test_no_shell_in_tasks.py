"""Shell text lives in the builders (swarmbook/*cmd.py, facts.py), where the builder tests see
every command: a task body may not pass a string literal, an f-string or a string it glues
together as a command to h.run / h.try_run / h.change / pool.exec, build a Fact, or quote."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TASKS = REPO / "swarmbook" / "tasks"
COMMAND_ARG = {"run": 0, "try_run": 0, "exec": 1, "change": 1}  # method -> position of the command
SHELL_HELPERS = {"join", "quote", "script"}  # swarmbook.shell's builders of shell text


def _is_shell_text(node: ast.AST, assigned: dict[str, list[ast.AST]]) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):  # "a" + b, "%s" % x
        return _is_shell_text(node.left, assigned) or _is_shell_text(node.right, assigned)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in SHELL_HELPERS:
            return True
        if isinstance(func, ast.Attribute) and func.attr in ("join", "format") and isinstance(func.value, ast.Constant):
            return True  # " && ".join(steps), "...".format(...)
        return False
    if isinstance(node, ast.IfExp):
        return _is_shell_text(node.body, assigned) or _is_shell_text(node.orelse, assigned)
    if isinstance(node, ast.Name):  # cmd = f"..."; h.run(cmd)
        return any(_is_shell_text(value, {}) for value in assigned.get(node.id, []))
    return False


def _assignments(func: ast.AST) -> dict[str, list[ast.AST]]:
    out: dict[str, list[ast.AST]] = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            out.setdefault(node.target.id, []).append(node.value)
    return out


def shell_text_in(source: str, filename: str = "<task>") -> list[str]:
    """Where ``source`` (a task module) holds shell text: 'file:line: what'."""
    tree = ast.parse(source, filename)
    found = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda, ast.AsyncFunctionDef))]
    assigned_in = {}
    for scope in scopes:
        names = _assignments(scope)
        for node in ast.walk(scope):
            assigned_in.setdefault(id(node), {}).update(names)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "swarmbook.shell":
            for alias in node.names:
                if alias.name in SHELL_HELPERS:
                    found.append(f"{filename}:{node.lineno}: imports swarmbook.shell.{alias.name}")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "Fact":
            found.append(f"{filename}:{node.lineno}: builds a Fact (facts belong in swarmbook/facts.py or a *cmd.py)")
            continue
        if not isinstance(func, ast.Attribute) or name not in COMMAND_ARG:
            continue
        pos = COMMAND_ARG[name]
        args = list(node.args)
        command = args[pos] if len(args) > pos else next((k.value for k in node.keywords if k.arg == "command"), None)
        if command is not None and _is_shell_text(command, assigned_in.get(id(node), {})):
            found.append(f"{filename}:{node.lineno}: shell text passed to .{name}()")
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in TASKS.glob("*.py")))
def test_task_modules_hold_no_shell_text(module):
    path = TASKS / module
    assert shell_text_in(path.read_text(), str(path.relative_to(REPO))) == []


@pytest.mark.parametrize("snippet", [
    'def t(h):\n    h.run("docker ps")\n',
    'def t(h):\n    h.try_run(f"cat {path}")\n',
    'def t(h):\n    h.change("step", "rm -rf /x", reason="r")\n',
    'def t(h):\n    h.change("step", command="echo " + name)\n',
    'def t(h):\n    h.change("step", " && ".join(steps))\n',
    'def t(h):\n    h.run(join(["docker", "ps"]))\n',
    'def t(h):\n    h.run("docker inspect %s" % name)\n',
    'def t(h):\n    cmd = f"docker rm {name}"\n    h.run(cmd, step="x")\n',
    'def t(h):\n    h.wait("x", lambda: h.try_run("curl -f http://x/").rc == 0)\n',
    'def t(h):\n    h.probe(F.Fact("x", K.cmd(), parse))\n',
    'def t(h):\n    h.run_.pool.exec(conn, "true", timeout=30)\n',
    'from swarmbook.shell import join, quote\n',
])
def test_the_scan_finds_each_kind_of_shell_text(snippet):
    assert shell_text_in(snippet) != []


@pytest.mark.parametrize("snippet", [
    'def t(h):\n    h.run(D.SERVER_VERSION_CMD, step="verify docker")\n',
    'def t(h):\n    h.change(f"network {name}", netcmd.create_cmd(name, subnet, encrypted=True), reason=f"{net}")\n',
    'def t(h):\n    h.change("show root password", None)\n',
    'def t(h):\n    cmd = K.deploy_cmd(path, name)\n    h.change(f"deploy {name}", cmd)\n',
    'def t(run, spec):\n    run.one(spec, body)\n',
])
def test_the_scan_lets_builder_calls_through(snippet):
    assert shell_text_in(snippet) == []
