"""The ``swarmbook`` command: Fabric's program with swarmbook's task collection bundled, so it
runs from any folder and looks for no tasks.py; ``-H a,b,c`` picks hosts as ``fab -H`` does,
and without it each task runs on its group from hosts.env as under ``inv``."""

from __future__ import annotations

from typing import Any


def program() -> Any:
    from fabric import Config, Executor
    from fabric.main import Fab

    from swarmbook import __version__
    from swarmbook.tasks import ns

    return Fab(name="swarmbook", binary="swarmbook", version=__version__, namespace=ns,
               executor_class=Executor, config_class=Config)


def main() -> None:
    program().run()
