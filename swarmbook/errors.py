"""Exceptions that end a run with one clear line instead of a traceback."""


class SwarmbookError(Exception):
    """Bad input or a refused operation: printed as one line, exit code 2."""

    exit_code = 2


class ConfigError(SwarmbookError):
    """hosts.env or a task argument is wrong; raised before any host is touched."""


class StepFailed(Exception):
    """A step failed on one host; the engine records it and goes on with other hosts."""
