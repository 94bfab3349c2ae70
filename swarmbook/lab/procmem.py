"""Resident memory of the lab: every process of each host (systemd, sshd, dockerd, containerd,
the nested containers' shims and processes, all descendants of the host container's init) plus
the lab's own processes on this machine (registries, apt server), read from /proc.

RSS counts shared pages once per process (an upper bound); PSS splits them between the
processes that share them (the fair total). Page cache is not resident process memory and is
left out (cgroup "usage" includes it)."""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


# -- pure parsers -----------------------------------------------------------------------------

def parent_of(stat_text: str) -> int:
    """The parent pid from /proc/PID/stat (the command name may hold spaces and parentheses)."""
    return int(stat_text.rsplit(")", 1)[1].split()[1])


def rss_pss_kib(smaps_rollup: str) -> tuple[int, int]:
    """(Rss, Pss) in KiB from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for line in smaps_rollup.splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0])
        elif key == "Pss":
            pss = int(rest.split()[0])
    return rss, pss


def descendants(root: int, children: dict[int, list[int]]) -> list[int]:
    """``root`` and every process below it."""
    out, i = [root], 0
    while i < len(out):
        out.extend(children.get(out[i], ()))
        i += 1
    return out


# -- reading /proc ------------------------------------------------------------------------------

def _children(proc: Path = PROC) -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir(proc):
        if entry.name.isdigit():
            try:
                ppid = parent_of((proc / entry.name / "stat").read_text())
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _usage(pids: list[int], proc: Path = PROC) -> dict:
    rss = pss = 0
    for pid in pids:
        try:
            r, p = rss_pss_kib((proc / str(pid) / "smaps_rollup").read_text())
        except OSError:
            continue  # exited meanwhile, or a kernel thread
        rss, pss = rss + r, pss + p
    return {"processes": len(pids), "rss_mib": round(rss / 1024, 1), "pss_mib": round(pss / 1024, 1)}


def measure(host_pids: dict[str, int], own_pids: list[int]) -> dict:
    """Per host (name -> pid of its container's init) and the lab's own processes, with totals."""
    tree = _children()
    out: dict = {"hosts": {name: _usage(descendants(pid, tree)) for name, pid in sorted(host_pids.items())},
                 "lab_processes": _usage(own_pids)}
    parts = [*out["hosts"].values(), out["lab_processes"]]
    out["total"] = {k: round(sum(p[k] for p in parts), 1) for k in ("processes", "rss_mib", "pss_mib")}
    return out
