"""The lab pushes its seed and platform images several at a time; every one is tagged before it
is pushed, each landed push is reported, and a failed push is raised (not lost in a thread)."""

import threading

import pytest

from swarmbook.lab import registry, sh
from swarmbook.lab.layout import LabError


def test_push_all_tags_then_pushes_each_concurrently_and_reports_each(monkeypatch):
    calls, lock = [], threading.Lock()
    both_pushing = threading.Barrier(2, timeout=30)  # two pushes in flight at once, or this breaks

    def fake_run(argv, **kw):
        with lock:
            calls.append(argv[:3])
        if argv[1] == "push":
            both_pushing.wait()
        return None

    monkeypatch.setattr(sh, "run", fake_run)
    landed = []
    out = registry.push_all([("local/a", "library/a:1"), ("local/b", "library/b:2")], "10.0.0.1:5000", {},
                            on_pushed=landed.append)
    assert out == ["pushed library/a:1", "pushed library/b:2"]
    assert sorted(landed) == ["library/a:1", "library/b:2"]
    for local, target in (("local/a", "10.0.0.1:5000/library/a:1"), ("local/b", "10.0.0.1:5000/library/b:2")):
        assert calls.index(["docker", "tag", local]) < calls.index(["docker", "push", target])


def test_push_all_raises_a_failed_push_after_the_others(monkeypatch):
    def fake_run(argv, **kw):
        if argv[1] == "push" and argv[2].endswith("/b:2"):
            raise LabError("push b failed")

    monkeypatch.setattr(sh, "run", fake_run)
    landed = []
    with pytest.raises(LabError, match="push b failed"):
        registry.push_all([("local/a", "library/a:1"), ("local/b", "library/b:2")], "r:5000", {},
                          on_pushed=landed.append)
    assert landed in (["library/a:1"], [])  # a's record may land before b's failure is seen
