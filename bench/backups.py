#!/usr/bin/env python3
"""swarmbook backups benchmark on the local lab: `backup.all --offline` a few times, then size and
time of each part from its manifest (MySQL, Kong's Postgres, GitLab, Portainer, the swarm), the
whole run's wall time, and kong.restore / mysql.restore of the files just made. Prints a table and
writes bench/results/backups.{json,md}.

Usage: python3 bench/backups.py [--runs 3]
Needs root and a lab on which the earlier lab tests (or bootstrap-all + kong.bootstrap) deployed
every part; a part that is not deployed shows as skipped. ~1 minute per run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.recovery import inv  # noqa: E402  (inv --json, measured; a failure ends the bench)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}–{max(values):.1f})" if values else "-"


def main() -> int:
    from swarmbook import backupfile, lab

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    info = lab.up(hosts=3)  # the running lab (brought up when it is not)
    env = {**os.environ, "SWARMBOOK_ENV": str(info.hosts_env), "SSH_KNOWN_HOSTS": str(info.known_hosts)}
    rows: dict[str, dict[str, list[float]]] = {}
    walls, restores = [], {"kong.restore": [], "mysql.restore": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            res = inv("backup.all", "--to", d, "--offline", env=env)
            walls.append(res["wall"])
            (folder,) = [p for p in Path(d).iterdir() if backupfile.ours(p)]
            for part in json.loads((folder / backupfile.MANIFEST).read_text())["parts"]:
                row = rows.setdefault(part["what"], {"seconds": [], "KiB": []})
                if part["status"] == "ok":
                    row["seconds"].append(part["seconds"])
                    row["KiB"].append(sum(f["size"] for f in part["files"]) / 1024)
            for task, pattern in (("kong.restore", "kong-*.sql.gz"), ("mysql.restore", "mysql-*.sql.gz")):
                (file,) = folder.glob(pattern)
                restores[task].append(inv(task, str(file), "--yes", env=env)["wall"])
    table = ["| part | seconds, median (min–max) | KiB, median (min–max) |", "| --- | --- | --- |"]
    for what, row in rows.items():
        table.append(f"| {what}.backup | {summary(row['seconds'])} | {summary(row['KiB'])} |")
    table.append(f"| backup.all (wall) | {summary(walls)} | |")
    for task, values in restores.items():
        note = " (already there: compared, 0 changed)" if task == "kong.restore" else " (drop and re-create)"
        table.append(f"| {task} of that file{note}, wall | {summary(values)} | |")
    text = "\n".join(table)
    print(text)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "backups.json").write_text(json.dumps({"parts": rows, "backup.all": walls, **restores}, indent=1))
    (out / "backups.md").write_text(f"# backups bench ({time.strftime('%Y-%m-%d')}, {args.runs} runs)\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
