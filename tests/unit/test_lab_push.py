"""The lab's pushes: every image is tagged before it is pushed, each landed push is reported
(the platform record is written per image), and a failed push stops the rest."""

import pytest

from swarmbook.lab import registry, sh
from swarmbook.lab.layout import LabError


def test_push_all_tags_then_pushes_each_and_reports_each(monkeypatch):
    calls = []
    monkeypatch.setattr(sh, "run", lambda argv, **kw: calls.append(argv[:3]))
    landed = []
    out = registry.push_all([("local/a", "library/a:1"), ("local/b", "library/b:2")], "10.0.0.1:5000", {},
                            on_pushed=landed.append)
    assert out == ["pushed library/a:1", "pushed library/b:2"] and landed == ["library/a:1", "library/b:2"]
    assert calls == [["docker", "tag", "local/a"], ["docker", "push", "10.0.0.1:5000/library/a:1"],
                     ["docker", "tag", "local/b"], ["docker", "push", "10.0.0.1:5000/library/b:2"]]


def test_push_all_stops_at_a_failed_push(monkeypatch):
    def fake_run(argv, **kw):
        if argv[1] == "push" and argv[2].endswith("/a:1"):
            raise LabError("push a failed")

    monkeypatch.setattr(sh, "run", fake_run)
    landed = []
    with pytest.raises(LabError, match="push a failed"):
        registry.push_all([("local/a", "library/a:1"), ("local/b", "library/b:2")], "r:5000", {},
                          on_pushed=landed.append)
    assert landed == []


def test_seeded_storage_is_kept_once_and_restored_only_into_an_empty_storage(tmp_path, monkeypatch):
    snap = tmp_path / "cache" / "registry-seeded-abc"
    monkeypatch.setattr(registry, "_seed_snapshot", lambda: snap)
    monkeypatch.setattr(sh, "run", lambda argv, **kw: __import__("subprocess").run(argv, check=True))
    storage = tmp_path / "lab" / "registry"
    (storage / "docker/registry/v2/blobs").mkdir(parents=True)
    (storage / "docker/registry/v2/blobs/data").write_text("layer")
    assert registry.save_seeded(storage) and (snap / "docker/registry/v2/blobs/data").read_text() == "layer"
    (storage / "docker/registry/v2/blobs/data").write_text("a test pushed more")
    assert not registry.save_seeded(storage)  # the first copy stays
    assert (snap / "docker/registry/v2/blobs/data").read_text() == "layer"

    assert not registry.restore_seeded(storage)  # not empty: left alone
    assert (storage / "docker/registry/v2/blobs/data").read_text() == "a test pushed more"
    fresh = tmp_path / "lab2" / "registry"
    assert registry.restore_seeded(fresh) and (fresh / "docker/registry/v2/blobs/data").read_text() == "layer"
    fresh.joinpath("docker/registry/v2/blobs/data").write_text("changed in the lab")
    assert (snap / "docker/registry/v2/blobs/data").read_text() == "layer"  # a copy, not a link

    monkeypatch.setattr(registry, "_seed_snapshot", lambda: None)  # a seed image not built yet
    assert not registry.restore_seeded(tmp_path / "lab3" / "registry")


def test_seed_key_names_the_exact_images():
    a = registry.seed_key(["sha256:1", "sha256:2"])
    assert a == registry.seed_key(["sha256:1", "sha256:2"]) != registry.seed_key(["sha256:1", "sha256:3"])
