#!/usr/bin/env python3
"""swarmbook benchmark: lab.up, first converge, no-op re-run, fan-out to 3 and 20 hosts, round trips,
start-up, peak memory and the lab's resident memory, measured on the local lab. Prints a table, writes bench/results/.

Usage: python3 bench/run.py [--runs 5] [--skip-20] [--engines 28.5,26.1,20.10] [--only-engines]
Needs root and the lab (it brings it up and takes it down itself). Takes ~10 minutes, plus
~3 minutes per further engine: the first of --engines gets every measure, each engine gets
first converge and no-op re-run, side by side (--only-engines: just those).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(argv: list[str], env: dict | None = None, cwd: Path | str = REPO) -> dict:
    """Run a command; wall seconds, peak RSS (KiB) of that process, exit code, swarmbook stats."""
    stats = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    e = {**os.environ, **(env or {}), "SWARMBOOK_STATS": stats}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=cwd, env=e, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    path = Path(stats)
    data = json.loads(path.read_text()) if path.stat().st_size else {"timeline": []}
    path.unlink()
    return {"wall": wall, "rss_kib": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime, "rc": p.returncode,
            "stdout": stdout, "stderr": stderr, "stats": data}


def remote_seconds(timeline: list, kinds: tuple[str, ...] = ("exec", "connect")) -> float:
    """Seconds during which at least one span of ``kinds`` was open: remote commands and SSH
    connects, or with "wait" also the polling of hosts until they are ready."""
    spans = sorted((t0, t1) for kind, _, _, t0, t1 in timeline if kind in kinds)
    total, cur_start, cur_end = 0.0, None, None
    for a, b in spans:
        if cur_end is None or a > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def lab_cpu_seconds() -> float | None:
    """CPU used so far by every lab host container (their sshd, shells, dockerd), from cgroups."""
    ids = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", "name=swarmbook-lab"],
                         capture_output=True, text=True).stdout.split()
    total = 0.0
    for cid in ids:
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
        if v1.exists():
            total += int(v1.read_text()) / 1e9
        elif v2.exists():
            total += int(v2.read_text().split("usage_usec ")[1].split()[0]) / 1e6
        else:
            return None
    return total


def script(tool: str) -> str:
    """The console script itself: where ``tool`` on PATH is a pyenv shim (a bash script that
    runs ``pyenv exec``, ~0.1 s here), the script it would run."""
    path = shutil.which(tool) or tool
    if "/shims/" in path:
        real = subprocess.run(["pyenv", "which", tool], capture_output=True, text=True).stdout.strip()
        return real or path
    return path


# What the `swarmbook` console script runs, with this checkout's code (cwd first on sys.path).
SWARMBOOK = [sys.executable, "-c", "import sys; sys.argv[0] = 'swarmbook'; from swarmbook.cli import main; main()"]


def subset_env(hosts_env: Path, workers: int) -> Path:
    """A hosts file for the same lab with only the first ``workers`` workers (0600, beside it)."""
    lines = []
    for line in hosts_env.read_text().splitlines():
        if line.startswith("WORKERS="):
            line = "WORKERS=" + ",".join(line.split("=", 1)[1].split(",")[:workers])
        lines.append(line)
    out = hosts_env.with_name(f"hosts-{workers + 1}.env")
    out.write_text("\n".join(lines) + "\n")
    out.chmod(0o600)
    return out


def fanout(envs: dict[int, dict], runs: int) -> dict[int, dict]:
    """docker.install --check on each host count, runs interleaved (this machine's speed drifts
    by tens of percent over minutes); per run: wall, swarmbook CPU, lab hosts' CPU."""
    out: dict[int, dict] = {n: {"wall": [], "cpu": [], "lab_cpu": []} for n in envs}
    for i in range(runs):
        for n in sorted(envs, reverse=bool(i % 2)):
            before = lab_cpu_seconds()
            r = measure([script("inv"), "docker.install", "--check", "--json"], envs[n])
            after = lab_cpu_seconds()
            assert r["rc"] == 0 and len(json.loads(r["stdout"].splitlines()[-1])["hosts"]) == n, r["stdout"][-500:]
            out[n]["wall"].append(r["wall"])
            out[n]["cpu"].append(r["cpu"])
            out[n]["rss_kib"] = max(out[n].get("rss_kib", 0), r["rss_kib"])
            if before is not None and after is not None:
                out[n]["lab_cpu"].append(after - before)
    return out


def round_trips(timeline: list) -> dict[str, dict[str, int]]:
    """task -> host -> number of remote commands (SSH round trips)."""
    out: dict[str, dict[str, int]] = {}
    for kind, host, task, _, _ in timeline:
        if kind == "exec":
            out.setdefault(task or "(lock)", {}).setdefault(host, 0)
            out[task or "(lock)"][host] += 1
    return out


def _cpu(own: list[float], lab: float | None) -> str:
    text = f"; CPU per run: swarmbook {statistics.median(own):.2f}s"
    return text + (f", lab hosts {lab:.2f}s (of {os.cpu_count()} cores shared by all)" if lab is not None else "")


def med(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}s"
    return f"{statistics.median(values):.2f}s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-20", action="store_true", help="skip the 20-host fan-out")
    ap.add_argument("--engines", default="28.5,26.1,20.10",
                    help="lab engine generations for first converge and no-op side by side; the first gets every measure")
    ap.add_argument("--only-engines", action="store_true", help="measure only first converge and no-op per engine")
    args = ap.parse_args()
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    from swarmbook import lab

    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores"}
    rows: list[tuple[str, str]] = []

    if args.only_engines:
        return _engines_only(engines, args.runs, results, rows)

    # 5. start-up, next to Invoke's own floor on the same machine at the same moment: a
    # one-task collection. Bytecode compiled first, as pip does on install.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "swarmbook", "tasks.py", "fabfile.py"],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    n = max(args.runs, 9)
    with tempfile.TemporaryDirectory() as tiny:
        Path(tiny, "tasks.py").write_text("from invoke import task\n\n@task\ndef hello(c):\n    \"\"\"Say hello.\"\"\"\n")
        tools = {"inv": script("inv"), "fab": script("fab")}
        runs: dict[str, list[float]] = {"inv": [], "fab": [], "floor": [], "shim": [], "swarmbook": []}
        for _ in range(n):  # interleaved: this machine's speed drifts over minutes
            runs["inv"].append(measure([tools["inv"], "--list"])["wall"])
            runs["floor"].append(measure([tools["inv"], "--list"], cwd=tiny)["wall"])
            runs["fab"].append(measure([tools["fab"], "--list"])["wall"])
            runs["swarmbook"].append(measure(SWARMBOOK + ["--list"])["wall"])
            if tools["inv"] != shutil.which("inv"):
                runs["shim"].append(measure(["inv", "--list"])["wall"])
    results.update({"inv_list": runs["inv"], "fab_list": runs["fab"], "invoke_floor_list": runs["floor"],
                    "inv_list_via_shim": runs["shim"], "swarmbook_list": runs["swarmbook"]})
    rows.append(("`inv --list`", med(runs["inv"])))
    rows.append(("  Invoke's floor: `inv --list` of a one-task collection", med(runs["floor"])))
    rows.append(("`fab --list`", med(runs["fab"])))
    rows.append(("`swarmbook --list` (the package's command: Fabric's program, this checkout's code)",
                 med(runs["swarmbook"])))
    if runs["shim"]:
        rows.append(("  `inv --list` through pyenv's shim (a bash script in front of every command)",
                     med(runs["shim"])))

    # 0. the lab itself: up after down (images and packages cached), then a second, no-op up
    lab.down()
    t0 = time.monotonic()
    info = lab.up(hosts=3, engine=engines[0])
    up_cold = time.monotonic() - t0
    t0 = time.monotonic()
    lab.up(hosts=3, engine=engines[0])
    up_again = time.monotonic() - t0
    results["lab_up"] = {"after_down": up_cold, "again": up_again}
    rows.append(("`lab.up` (3 hosts) after `lab.down`, image cache warm", f"{up_cold:.1f}s"))
    rows.append(("second `lab.up` (nothing to do)", f"{up_again:.1f}s"))

    # 1. first converge on 3 fresh hosts
    env = {"SWARMBOOK_ENV": str(info.hosts_env)}
    first = measure([script("inv"), "bootstrap-all", "--json"], env)
    assert first["rc"] == 0, first["stdout"][-2000:] + first["stderr"][-2000:]
    remote = remote_seconds(first["stats"]["timeline"])
    waiting = remote_seconds(first["stats"]["timeline"], ("exec", "connect", "wait"))
    results["first_converge"] = {"wall": first["wall"], "remote": remote, "remote_or_wait": waiting,
                                 "rss_kib": first["rss_kib"], "cpu": first["cpu"]}
    rows.append((f"first converge, bootstrap-all, 3 hosts, Docker {engines[0]}", f"{first['wall']:.1f}s wall"))
    rows.append(("  of which remote commands / SSH (union of spans)", f"{remote:.1f}s"))
    rows.append(("  of which polling hosts until ready (between polls)", f"{waiting - remote:.1f}s"))
    over = first["wall"] - waiting
    rows.append(("  swarmbook's own overhead (the rest)", f"{over:.1f}s ({100 * over / first['wall']:.1f}%); "
                 f"its CPU {first['cpu']:.1f}s"))

    # 2 + 4. no-op re-run and round trips
    noop = [measure([script("inv"), "bootstrap-all", "--json"], env) for _ in range(args.runs)]
    for r in noop:
        assert r["rc"] == 0, "no-op run failed:\n" + r["stdout"][-3000:] + r["stderr"][-2000:]
    changed = sum(1 for r in noop for ln in r["stdout"].splitlines() if '"status": "changed"' in ln)
    results["noop"] = {"wall": [r["wall"] for r in noop], "changed": changed,
                       "rss_kib": max(r["rss_kib"] for r in noop)}
    rows.append(("no-op re-run, bootstrap-all, 3 hosts", med(results["noop"]["wall"]) + f", {changed} changed"))
    trips = round_trips(noop[-1]["stats"]["timeline"])
    results["round_trips"] = trips
    worst = max((n, t, h) for t, hosts in trips.items() for h, n in hosts.items())
    rows.append(("  SSH round trips per host per task (max)", f"{worst[0]} ({worst[1]} on {worst[2]})"))
    rows.append(("  SSH round trips, whole no-op run", str(sum(sum(h.values()) for h in trips.values()))))

    # 7. resident memory of the 3-host lab with the whole runbook running (dockerd on each host)
    mem = lab.memory()
    results["lab_memory"] = mem
    per_host = ", ".join(f"{name} {m['rss_mib']:.0f}" for name, m in mem["hosts"].items())
    rows.append(("resident memory of the 3-host lab after bootstrap-all (all processes of the hosts, "
                 "nested containers included, + registries)",
                 f"{mem['total']['rss_mib']:.0f} MiB RSS ({mem['total']['pss_mib']:.0f} MiB PSS); "
                 f"per host RSS MiB: {per_host}"))

    # 3. fan-out: the no-op check of a host-level task on 3 and on 20 hosts of one 20-host lab
    # (fresh hosts without Docker, as the issue allows), interleaved
    fan: dict[int, dict] = {}
    if not args.skip_20:
        lab.down()
        info20 = lab.up(hosts=20)
        envs = {3: {"SWARMBOOK_ENV": str(subset_env(info20.hosts_env, 2))},
                20: {"SWARMBOOK_ENV": str(info20.hosts_env)}}
        fan = fanout(envs, args.runs)
        results["fanout"] = fan
        cores = os.cpu_count() or 1
        for n in (3, 20):
            f = fan[n]
            text = med(f["wall"])
            if n == 20:
                text += f" = {statistics.median(f['wall']) / statistics.median(fan[3]['wall']):.2f}x the 3-host time"
            own = statistics.median(f["cpu"])
            text += f"; CPU per run: swarmbook {own:.2f}s"
            if f["lab_cpu"]:
                labc = statistics.median(f["lab_cpu"])
                text += (f", lab hosts {labc:.2f}s; all of it on {cores} cores takes at least "
                         f"{(own + labc) / cores:.2f}s")
            rows.append((f"docker.install --check, {n} hosts (same lab)", text))
    # 6. memory
    peak = max([first["rss_kib"], results["noop"]["rss_kib"], fan.get(20, {}).get("rss_kib", 0)])
    rows.append(("peak RSS of the swarmbook process (1-3)", f"{peak / 1024:.0f} MiB"))
    results["engines"] = {engines[0]: {"first": first["wall"], "noop": results["noop"]["wall"], "changed": changed}}
    for e in engines[1:]:
        results["engines"][e] = converge_and_noop(e, args.runs)
    _engine_rows(results["engines"], rows)
    lab.down()
    return _write(results, rows)


def converge_and_noop(engine: str, runs: int) -> dict:
    """First converge and no-op re-runs of bootstrap-all on a fresh 3-host lab offering ``engine``."""
    from swarmbook import lab

    lab.down()
    info = lab.up(hosts=3, engine=engine)
    env = {"SWARMBOOK_ENV": str(info.hosts_env)}
    first = measure([script("inv"), "bootstrap-all", "--json"], env)
    assert first["rc"] == 0, first["stdout"][-2000:] + first["stderr"][-2000:]
    noop = [measure([script("inv"), "bootstrap-all", "--json"], env) for _ in range(runs)]
    changed = sum(1 for r in noop for ln in r["stdout"].splitlines() if '"status": "changed"' in ln)
    assert all(r["rc"] == 0 for r in noop) and changed == 0, noop[-1]["stdout"][-3000:]
    return {"first": first["wall"], "noop": [r["wall"] for r in noop], "changed": changed,
            "first_remote": remote_seconds(first["stats"]["timeline"]),
            "first_remote_or_wait": remote_seconds(first["stats"]["timeline"], ("exec", "connect", "wait"))}


def _engine_rows(per_engine: dict, rows: list) -> None:
    for e, r in per_engine.items():
        rows.append((f"Docker {e}: first converge / no-op re-run (bootstrap-all, 3 hosts)",
                     f"{r['first']:.1f}s / {med(r['noop'])}, {r['changed']} changed"))


def _engines_only(engines: list[str], runs: int, results: dict, rows: list) -> int:
    from swarmbook import lab

    results["engines"] = {}
    for e in engines:  # one after another on this machine, minutes apart: read them side by side
        results["engines"][e] = converge_and_noop(e, runs)
    _engine_rows(results["engines"], rows)
    lab.down()
    return _write(results, rows)


def spread_table(rows: dict[str, list[float]]) -> str:
    """Markdown: one row a measure, with median, min, max and how many values."""
    lines = ["| measure | median | min | max | n |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {k} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} | {len(v)} |" for k, v in rows.items() if v]
    return "\n".join(lines)


def write_named(name: str, rows: dict[str, list[float]], text: str, title: str) -> None:
    """Print ``text`` and keep it (bench/results/NAME.md) with the raw values (NAME.json)."""
    print(text)
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(rows, indent=1))
    (out_dir / f"{name}.md").write_text(f"# {title} ({time.strftime('%Y-%m-%d')})\n\n{text}\n")


def _write(results: dict, rows: list) -> int:
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(results, indent=2))
    table = "| measure | result |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    (out_dir / "latest.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
