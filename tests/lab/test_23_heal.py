"""Deploys that heal, on the real 3-node lab swarm (after test_20: the demo stack runs in host
mode on every node, with its healthcheck and update_config.failure_action: rollback).

A broken version (the demo image whose process never listens, so its healthcheck fails) is
deployed: swarm rolls the service back, stack.deploy says so and fails, and the old version
serves on every node. stack.rollback returns a stack to its previous spec, once.
NOT proved here: that no request is lost meanwhile (the demo publishes in host mode with
stop-first updates, so each node's own port is down while its task is replaced; a load
balancer in front is what carries requests across that gap).
"""

import json
import urllib.request

import pytest

from swarmbook.lab import layout

from .sb import sb, ssh

pytestmark = pytest.mark.lab

REGISTRY = f"{layout.REGISTRY_HOST}:{layout.REGISTRY_PORT}"


def serves_everywhere(lab) -> list[str]:
    """Each node's answer on the demo's published port (an error text where it does not answer)."""
    out = []
    for h in lab.hosts:
        try:
            with urllib.request.urlopen(f"http://{h.addr}:9501/", timeout=5) as r:
                out.append(r.read().decode().splitlines()[0])
        except OSError as exc:
            out.append(f"{h.name}: {exc}")
    return out


def service_image(lab) -> str:
    return ssh(lab, lab.hosts[0], "docker service inspect --format '{{.Spec.TaskTemplate.ContainerSpec.Image}}' "
                                  "demo_demo").stdout.strip()


def update_state(lab) -> str:
    out = ssh(lab, lab.hosts[0], "docker service inspect --format '{{json .UpdateStatus}}' demo_demo").stdout
    return (json.loads(out) or {}).get("State", "")


@pytest.fixture(scope="module")
def broken(lab, tmp_path_factory):
    """demo:broken pushed to the lab registry: the demo image whose command never listens."""
    ctx = tmp_path_factory.mktemp("broken")
    (ctx / "Dockerfile").write_text(f"FROM {REGISTRY}/demo:latest\nCMD [\"sleep\", \"3600\"]\n")
    out = sb(lab, "image.build-push", "--context", str(ctx), "--tag", "broken")
    assert out.rc == 0, out.stdout + out.stderr
    return "broken"


def test_a_version_that_never_turns_healthy_is_rolled_back_and_the_run_fails(lab, broken):
    assert sb(lab, "stack.deploy", "demo").rc == 0
    good = service_image(lab)
    assert serves_everywhere(lab) == ["demo ok"] * len(lab.hosts)

    out = sb(lab, "stack.deploy", "demo", "--tag", broken, "--timeout", "240")
    assert out.rc == 1, out.stdout + out.stderr
    (fail,) = out.failed
    assert "demo_demo was rolled back" in fail["reason"] and "not the deployed file" in fail["reason"], fail
    assert update_state(lab) == "rollback_completed"
    assert service_image(lab) == good  # the old spec, digest and all
    assert serves_everywhere(lab) == ["demo ok"] * len(lab.hosts)

    again = sb(lab, "stack.deploy", "demo", "--tag", broken, "--timeout", "240")  # the file still asks for it
    assert again.rc == 1 and "was rolled back" in again.failed[0]["reason"], again.stdout


def test_the_good_file_deploys_again_and_then_changes_nothing(lab, broken):
    out = sb(lab, "stack.deploy", "demo")
    assert out.rc == 0, out.stdout + out.stderr
    assert serves_everywhere(lab) == ["demo ok"] * len(lab.hosts)
    rerun = sb(lab, "stack.deploy", "demo")
    assert rerun.rc == 0 and rerun.changed == 0, rerun.stdout


def test_stack_rollback_returns_to_the_previous_spec_once(lab, broken):
    out = sb(lab, "stack.rollback", "demo")
    assert out.rc == 0, out.stdout + out.stderr
    assert [s["step"] for s in out.steps("changed")] == ["rollback demo_demo"]
    assert update_state(lab) == "rollback_completed"
    assert serves_everywhere(lab) == ["demo ok"] * len(lab.hosts)
    twice = sb(lab, "stack.rollback", "demo")
    assert twice.rc == 0 and twice.changed == 0, twice.stdout
    assert "already rolled back" in json.dumps(twice.steps("ok"))
    # the deployed file is the desired state: deploy goes back to it, then is a no-op
    assert sb(lab, "stack.deploy", "demo").changed >= 1
    assert sb(lab, "stack.deploy", "demo").changed == 0


def labels(lab) -> dict:
    out = ssh(lab, lab.hosts[0], "docker service inspect --format '{{json .Spec.Labels}}' demo_demo").stdout
    return json.loads(out) or {}


def test_a_service_changed_behind_swarmbooks_back_is_seen_and_healed(lab):
    """Another tool edits the running service (as Portainer or `docker service update` would):
    the registry-auth label that registry.refresh-auth reads is removed, an env var added."""
    assert sb(lab, "stack.deploy", "demo").changed == 0
    assert "swarmbook.registry-auth" in labels(lab)
    ssh(lab, lab.hosts[0], "docker service update --quiet --detach --label-rm swarmbook.registry-auth "
                           "--env-add EDITED=by-hand demo_demo")
    check = sb(lab, "stack.deploy", "demo", "--check")
    assert check.rc == 0, check.stdout + check.stderr
    (step,) = check.steps("changed")
    assert "drift: demo_demo: Labels.swarmbook.registry-auth removed" in step["reason"], step
    assert "TaskTemplate.ContainerSpec.Env" in step["reason"], step
    assert "swarmbook.registry-auth" not in labels(lab)  # --check changed nothing

    out = sb(lab, "stack.deploy", "demo")
    assert out.rc == 0 and "drift:" in out.steps("changed")[0]["reason"], out.stdout + out.stderr
    assert "swarmbook.registry-auth" in labels(lab)
    env = ssh(lab, lab.hosts[0], "docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "
                                 "demo_demo").stdout
    assert "EDITED" not in env
    assert serves_everywhere(lab) == ["demo ok"] * len(lab.hosts)
    assert sb(lab, "stack.deploy", "demo").changed == 0
