"""The one way the lab runs commands: argv lists, no shell, errors that say what failed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from .layout import LabError

VERBOSE = bool(os.environ.get("SWARMBOOK_LAB_VERBOSE"))


def log(msg: str) -> None:
    print(f"lab: {msg}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, check: bool = True, input: str | bytes | None = None,
        env: dict[str, str] | None = None, timeout: float | None = None,
        quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run argv, capture output as text. On failure raise LabError with the tail of stderr."""
    if VERBOSE:
        log("$ " + " ".join(argv))
    full_env = {**os.environ, **env} if env else None
    binary = isinstance(input, bytes)  # e.g. a tar stream: passed as it is, output read as text
    try:
        cp = subprocess.run(list(argv), input=input, capture_output=True, text=not binary,
                            env=full_env, timeout=timeout)
        if binary:
            cp.stdout, cp.stderr = cp.stdout.decode(errors="replace"), cp.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        raise LabError(f"timed out after {timeout}s: {' '.join(argv[:4])} ...") from e
    except FileNotFoundError as e:
        raise LabError(f"command not found: {argv[0]} (run scripts/outer-setup.sh)") from e
    if check and cp.returncode != 0:
        tail = (cp.stderr or cp.stdout).strip().splitlines()[-8:]
        raise LabError(f"`{' '.join(argv[:5])}` failed ({cp.returncode}): " + "\n".join(tail))
    if not quiet and VERBOSE and cp.stdout.strip():
        log(cp.stdout.strip()[-2000:])
    return cp


def ok(argv: Sequence[str], **kw) -> bool:
    """True when argv exits 0."""
    return run(argv, check=False, **kw).returncode == 0


def pipe(producer: Sequence[str], consumer: Sequence[str], *, env: dict[str, str] | None = None
         ) -> str:
    """producer | consumer (e.g. tar c | docker import -); returns the consumer's stdout."""
    if VERBOSE:
        log("$ " + " ".join(producer) + " | " + " ".join(consumer))
    full_env = {**os.environ, **env} if env else None
    p1 = subprocess.Popen(list(producer), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p2 = subprocess.run(list(consumer), stdin=p1.stdout, capture_output=True, text=True,
                        env=full_env)
    assert p1.stdout is not None
    p1.stdout.close()
    err1 = p1.stderr.read().decode(errors="replace") if p1.stderr else ""
    rc1 = p1.wait()
    if rc1 != 0 or p2.returncode != 0:
        raise LabError(f"`{producer[0]} | {' '.join(consumer[:3])}` failed: "
                       f"{err1.strip()[-500:]} {p2.stderr.strip()[-500:]}")
    return p2.stdout
