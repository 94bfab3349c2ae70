"""Fixtures for tests against the real lab (containers with systemd + sshd, registry)."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "lab: needs the local lab (root, docker); run with `pytest tests/lab -m lab`")


@pytest.fixture(scope="session")
def lab():
    """The running lab (brought up once per session, never torn down here: .ci/run does)."""
    from swarmbook import lab as swarmbook_lab

    return swarmbook_lab.up(hosts=int(os.environ.get("SWARMBOOK_LAB_HOSTS", 3)))
