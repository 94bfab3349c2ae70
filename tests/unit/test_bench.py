"""bench/run.py's own arithmetic: the figures in the README come from these helpers."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_remote_time_is_the_union_of_overlapping_spans():
    timeline = [("connect", "a", "", 0.0, 1.0), ("connect", "b", "", 0.5, 1.5),  # overlap: 1.5 s
                ("exec", "a", "t", 2.0, 3.0), ("wait", "a", "t", 3.0, 5.0),       # wait not counted
                ("exec", "b", "t", 2.5, 2.8)]                                      # inside a's exec
    assert bench.remote_seconds(timeline) == 2.5
    assert bench.remote_seconds(timeline, ("exec", "connect", "wait")) == 4.5
    assert bench.remote_seconds([]) == 0.0


def test_round_trips_count_remote_commands_per_task_and_host():
    timeline = [("exec", "a", "t1", 0, 1), ("exec", "a", "t1", 1, 2), ("exec", "b", "t1", 0, 1),
                ("connect", "a", "", 0, 1), ("exec", "a", "", 2, 3)]
    assert bench.round_trips(timeline) == {"t1": {"a": 2, "b": 1}, "(lock)": {"a": 1}}


def test_subset_env_keeps_every_setting_and_the_first_workers(tmp_path):
    env = tmp_path / "hosts.env"
    env.write_text("MANAGERS=10.0.0.1\nWORKERS=10.0.0.2,10.0.0.3,10.0.0.4\nSSH_KEY=/k\n")
    out = bench.subset_env(env, 2)
    assert out.read_text() == "MANAGERS=10.0.0.1\nWORKERS=10.0.0.2,10.0.0.3\nSSH_KEY=/k\n"
    assert out.stat().st_mode & 0o077 == 0  # it holds the lab's secrets too


def test_median_with_spread():
    assert bench.med([3.0, 1.0, 2.0]) == "2.00s (min 1.00, max 3.00, n=3)"
    assert bench.med([1.5]) == "1.50s"


def test_the_day2_bench_reads_each_nodes_upgrade_times_from_its_step():
    from tests.lab import drills

    reason = "docker.io 26.1.5+dfsg1-9+b9 -> 28.5.2+dfsg4-1 in 41.2s (drain 8.1s, packages 20.3s, ready 3.0s, activate 9.8s)"
    assert drills.seconds(reason) == {"total": 41.2, "drain": 8.1, "packages": 20.3, "ready": 3.0, "activate": 9.8}


def test_spread_table_has_median_min_max_and_count_and_skips_empty_measures():
    table = bench.spread_table({"a s": [3.0, 1.0, 2.0], "none": []})
    assert table.splitlines() == ["| measure | median | min | max | n |", "| --- | --- | --- | --- | --- |",
                                  "| a s | 2.0 | 1.0 | 3.0 | 3 |"]
