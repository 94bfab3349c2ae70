"""The lab's memory figures: pure parsers of /proc, and a measurement of a real process tree."""

import os
import subprocess
import sys

from swarmbook.lab import procmem as memory


def test_parent_of_survives_spaces_and_parentheses_in_the_command_name():
    assert memory.parent_of("4242 (my (odd) name) S 17 4242 4242 0 -1 4194560") == 17
    assert memory.parent_of("1 (systemd) S 0 1 1 0") == 0


def test_rss_and_pss_from_smaps_rollup():
    text = ("55d0c6a4e000-7ffd5a1f1000 ---p 00000000 00:00 0   [rollup]\n"
            "Rss:               10240 kB\nPss:                7168 kB\nPss_Anon:  100 kB\n"
            "Shared_Clean:       4096 kB\n")
    assert memory.rss_pss_kib(text) == (10240, 7168)
    assert memory.rss_pss_kib("") == (0, 0)


def test_descendants_walks_the_whole_tree_once():
    tree = {1: [2, 3], 2: [4], 4: [5], 9: [10]}
    assert sorted(memory.descendants(1, tree)) == [1, 2, 3, 4, 5]
    assert memory.descendants(7, tree) == [7]


def test_measure_counts_a_real_process_and_its_children():
    # a parent holding ~64 MiB resident, with one child: both counted under the parent's tree
    code = ("import subprocess, sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); "
            "c = subprocess.Popen(['sleep', '30']); print('ready', flush=True); time.sleep(30)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        out = memory.measure({"hx": p.pid}, [os.getpid()])
        hx = out["hosts"]["hx"]
        assert hx["processes"] == 2
        assert hx["rss_mib"] >= 64 and hx["pss_mib"] >= 60
        assert out["lab_processes"]["processes"] == 1
        assert out["total"]["rss_mib"] == round(hx["rss_mib"] + out["lab_processes"]["rss_mib"], 1)
    finally:
        p.kill()
        p.wait()
