"""Deploys that heal, on the real 3-node lab swarm (after test_20: the demo stack runs in host
mode on every node, with its healthcheck and update_config.failure_action: rollback).

A broken version (the demo image whose process never listens, so its healthcheck fails) is
deployed: swarm rolls the service back, stack.deploy says so and fails, and the old version
serves on every node. stack.rollback returns a stack to its previous spec, once. A task swarm
stopped restarting (restart_policy max_attempts used up, as the disaster drill's rejoined node
saw) is restarted by the next stack.deploy, once, and the run after changes nothing.
NOT proved here: that no request is lost meanwhile (the demo publishes in host mode with
stop-first updates, so each node's own port is down while its task is replaced; a load
balancer in front is what carries requests across that gap).
"""

import http.client
import json
import time
import urllib.request

import pytest

from swarmbook.lab import layout

from .sb import sb, ssh, until

pytestmark = pytest.mark.lab

REGISTRY = f"{layout.REGISTRY_HOST}:{layout.REGISTRY_PORT}"


def serves_everywhere(lab) -> list[str]:
    """Each node's answer on the demo's published port (an error text where it does not answer)."""
    out = []
    for h in lab.hosts:
        try:
            with urllib.request.urlopen(f"http://{h.addr}:9501/", timeout=5) as r:
                out.append(r.read().decode().splitlines()[0])
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, cut mid-body
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


FLAG_STACK = """version: '3.7'
services:
  web:
    image: ${REGISTRY}/library/nginx:latest
    volumes:
      - {type: bind, source: /srv/swarmbook-flag, target: /flag}
    deploy:
      mode: global
      restart_policy: {condition: on-failure, delay: 1s, max_attempts: 2}
"""


def flag_tasks(lab) -> list[str]:
    out = ssh(lab, lab.hosts[0], "docker service ps --format '{{.Node}} {{.DesiredState}} {{.CurrentState}}' flag_web")
    return out.stdout.splitlines()


def test_a_task_swarm_stopped_restarting_is_restarted_by_the_next_deploy(lab, tmp_path):
    """A global service whose bind source is missing on h3 for a while: the killed task is
    rejected until restart_policy.max_attempts is used up, then swarm leaves h3 without a task
    for good (the counts still say converged). Once the fault is fixed, stack.deploy restarts
    the service (once) and every node runs it; the next run changes nothing."""
    (tmp_path / "stacks" / "flag").mkdir(parents=True)
    (tmp_path / "stacks" / "flag" / "deploy.yml").write_text(FLAG_STACK)
    (tmp_path / "stacks" / "flag" / "app.env").write_text("FLAG=1\n")
    env = tmp_path / "flag.env"
    env.write_text(lab.hosts_env.read_text() + f"STACKS_PATH={tmp_path / 'stacks'}\n")
    env.chmod(0o600)
    for h in lab.hosts:
        ssh(lab, h, "mkdir -p /srv/swarmbook-flag")
    try:
        first = sb(lab, "stack.deploy", "flag", hosts_env=str(env))
        assert first.rc == 0, first.stdout + first.stderr
        h3 = lab.hosts[-1]
        ssh(lab, h3, "rmdir /srv/swarmbook-flag && docker kill $(docker ps -q --filter "
                     "label=com.docker.swarm.service.name=flag_web)")
        until("swarm to stop restarting flag_web on h3", lambda: flag_tasks(lab),
              lambda rows: len(mine := [r for r in rows if r.startswith(f"{h3.hostname} ")]) >= 3  # killed + 2 tries
              and all(r.split()[1] == "Shutdown" for r in mine), timeout=60)  # no retry on its way
        ssh(lab, h3, "mkdir -p /srv/swarmbook-flag")
        time.sleep(5)  # swarm has given up for good: nothing comes back by itself
        assert not [r for r in flag_tasks(lab) if r.startswith(f"{h3.hostname} Running")], flag_tasks(lab)
        told = sb(lab, "doctor", hosts_env=str(env))  # the counts say converged; doctor reads each slot
        said = [s["reason"] for s in told.failed if "flag_web" in s["reason"]]
        assert told.rc == 1 and len(said) == 1, told.stdout
        assert f"swarm stopped restarting it ({h3.hostname}: " in said[0] and "stack.deploy restarts it" in said[0], said

        healed = sb(lab, "stack.deploy", "flag", hosts_env=str(env))
        assert healed.rc == 0, healed.stdout + healed.stderr
        (step,) = healed.steps("changed")
        assert step["step"] == "restart flag_web" and f"{h3.hostname}: " in step["reason"], step
        assert "restart_policy max_attempts used up" in step["reason"], step
        running = [r.split()[0] for r in flag_tasks(lab) if r.split()[1:3] == ["Running", "Running"]]
        assert sorted(running) == sorted(h.hostname for h in lab.hosts), flag_tasks(lab)
        again = sb(lab, "stack.deploy", "flag", hosts_env=str(env))
        assert again.rc == 0 and again.changed == 0, again.stdout
    finally:
        ssh(lab, lab.hosts[0], "docker stack rm flag", check=False)
        for h in lab.hosts:
            ssh(lab, h, "rm -rf /srv/swarmbook-flag", check=False)
