"""Images: build an app image on the build host and push it to the registry.

The build context is a folder on this machine, sent as a tar stream on stdin to
``docker build -`` on the first BUILD host (the runbook builds on one of the servers).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection

from swarmbook.lazy import lazy
from swarmbook.taskdef import cluster_task, refuse

if TYPE_CHECKING:
    from swarmbook.config import HostSpec
    from swarmbook.engine import Host, Run

if TYPE_CHECKING:  # editors and type checkers see the real modules; at run time each loads on first use
    from swarmbook import containercmd, config, validate
else:
    containercmd = lazy("swarmbook.containercmd")
    config = lazy("swarmbook.config")
    validate = lazy("swarmbook.validate")


def context_tar(folder: Path) -> bytes:
    """The build context as a tar (sorted, fixed mtimes: same files give the same bytes)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for p in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(folder)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            tar.addfile(info, p.open("rb") if p.is_file() else None)
    return buf.getvalue()


def _folder(settings, context):
    return Path(context) if context else config.stacks_path(settings) / settings["PROJECT"] / "app"


def _validate(settings, context=None, tag=None, **_):
    if tag is not None:
        validate.tag(tag, "--tag")
    folder = _folder(settings, context)
    if not (folder / "Dockerfile").is_file():
        refuse(f"build context {folder} has no Dockerfile")
    if not settings["REGISTRY"]:
        refuse(f"REGISTRY is empty in {settings.source}")


@cluster_task(group="build", name="build-push", validate=_validate, help={
    "context": "build context folder on this machine (default stacks/PROJECT/app)",
    "tag": "image tag (default IMAGE_TAG)",
    "rebuild": "build even when the context is unchanged (e.g. to pick up a newer base image)",
})
def build_push(run: Run, specs: list[HostSpec], context=None, tag=None, rebuild=False):
    """Build REGISTRY/PROJECT:TAG on the build host and push it (changed only when new layers)."""
    s = run.settings
    import hashlib

    image = f"{s['REGISTRY']}/{s['PROJECT']}:{s.get('IMAGE_TAG', tag)}"
    data = context_tar(_folder(s, context))
    digest = hashlib.sha256(data).hexdigest()[:32]

    def body(h: Host) -> None:
        label = h.probe(containercmd.image_label_fact(image, "swarmbook.context"))["label"]
        if label == digest and not rebuild:
            h.ok(f"build {image}", "context unchanged")
        elif h.check:
            h.change(f"build {image}", None, reason="context changed" if label else "no such image here")
            return
        else:
            h.run(containercmd.build_cmd(image, {"swarmbook.context": digest}), stdin=data, timeout=1800, step="docker build")
            h.change(f"build {image}", None, reason=f"context {digest[:12]}")
        if h.check:
            return
        out = h.run(containercmd.push_cmd(image), timeout=1800, step="docker push").stdout
        if "Pushed" in out:
            h.change(f"push {image}", None, reason="new layers pushed")
        else:
            h.ok(f"push {image}", "registry already has it")

    run.one(specs[0], body)


ns = Collection("image", build_push)
