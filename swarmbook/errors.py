"""Exceptions that end a run with one clear line instead of a traceback."""


class SwarmbookError(Exception):
    """Bad input or a refused operation: printed as one line, exit code 2."""

    exit_code = 2


class ConfigError(SwarmbookError):
    """hosts.env or a task argument is wrong; raised before any host is touched."""


class StepFailed(Exception):
    """A step failed on one host; the engine records it and goes on with other hosts."""


class Unmet(StepFailed):
    """A prerequisite that an earlier task makes is missing (docker, a network, a package).
    Failed when changing; in check mode skipped instead: that earlier task would make it first,
    and nothing more can be probed here until it exists (``bootstrap-all --check`` on new hosts)."""
