"""The files swarmbook ships beside its code, found the same way in a checkout and in an
installed wheel: the demo stack (``stacks/``), the app repo's pipeline templates
(``templates/``), ``hosts.env.example`` and the lab's machine setup (``scripts/outer-setup.sh``).

A checkout (or an editable install) keeps them at its root, beside this package; the wheel
carries the same files as package data in ``swarmbook/_data/`` (setup.py copies :data:`SHIPPED`
there when it builds). The lab's stand-in files are package data of ``swarmbook.lab``
(``swarmbook/lab/standin/``) in both. Pure paths, nothing read at import time.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
BUNDLED = PACKAGE / "_data"  # only in an installed wheel
SHIPPED = ("stacks", "templates", "hosts.env.example", "scripts/outer-setup.sh")  # relative to the root


def installed() -> bool:
    """True when this swarmbook came from a wheel (its files are in swarmbook/_data/)."""
    return BUNDLED.is_dir()


def root() -> Path:
    """The folder that holds :data:`SHIPPED`: swarmbook/_data/ of a wheel, else the checkout's root."""
    return BUNDLED if installed() else PACKAGE.parent


def path(name: str) -> Path:
    """A shipped file or folder by its checkout-relative name, e.g. ``path("stacks")``."""
    return root() / name
