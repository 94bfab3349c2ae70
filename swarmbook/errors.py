"""Exceptions that end a run with one clear line instead of a traceback.

Exit codes: 0 done; 1 some host failed (the recap names it; others may have changed) or a bug;
2 bad input or a refused operation, before any host is touched; 3 the cluster lock was not
taken, so nothing changed: another run holds it, or no manager answered (``swarmbook.lock``).
"""


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
