"""Pure helpers for stacks: render a stack file from hosts.env values, name the .env config
by its content, read service convergence.

A config's name carries the hash of its content (``demo_env_3f2a...``): a changed .env is
a new config, so the service rolls to it instead of failing with "config is in use".
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Callable
from typing import Any

import yaml

from .errors import ConfigError
from .facts import Fact, engine_fact, engine_filters
from .shell import join, quote


def config_name(stack: str, content: str) -> str:
    return f"{stack}_env_{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def template_vars(settings, stack: str, env_content: str, **overrides: Any) -> dict[str, str]:
    """Variables a stack template may use: every hosts.env key, plus IMAGE, STACK, ENV_CONFIG."""
    values = {k: (",".join(v) if isinstance(v, tuple) else str(v)) for k, v in settings.values.items()
              if not k.endswith("PASSWORD")}
    values.update({k: str(v) for k, v in overrides.items() if v is not None})
    values["STACK"] = stack
    values["ENV_CONFIG"] = config_name(stack, env_content)
    registry = values.get("REGISTRY", "")
    values["IMAGE"] = f"{registry + '/' if registry else ''}{values['PROJECT']}:{values['IMAGE_TAG']}"
    return values


def render(template: str, values: dict[str, str], *, source: str) -> str:
    """Substitute ${VARS}, parse the YAML, apply the publish mode; errors name the problem."""
    try:
        text = string.Template(template).substitute(values)
    except KeyError as exc:
        raise ConfigError(f"{source}: unknown variable ${{{exc.args[0]}}}") from None
    except ValueError as exc:
        raise ConfigError(f"{source}: bad placeholder ({exc})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise ConfigError(f"{source}: a stack file needs a 'services:' mapping")
    if values.get("STACK_PUBLISH_MODE") == "host":
        for svc in doc["services"].values():
            _host_mode(svc)
    return yaml.safe_dump(doc, sort_keys=False)


def _host_mode(svc: dict[str, Any]) -> None:
    """Publish ports on each node's own address and run one task per node (no routing mesh)."""
    ports = svc.get("ports") or []
    if not ports:
        return
    new = []
    for p in ports:
        if isinstance(p, dict):
            new.append({**p, "mode": "host"})
        else:
            m = re.fullmatch(r"(?:(\d+):)?(\d+)(?:/(tcp|udp))?", str(p))
            if not m:
                raise ConfigError(f"port {p!r}: use published:target")
            new.append({"target": int(m.group(2)), "published": int(m.group(1) or m.group(2)),
                        "protocol": m.group(3) or "tcp", "mode": "host"})
    svc["ports"] = new
    deploy = svc.setdefault("deploy", {})
    deploy["mode"] = "global"
    deploy.pop("replicas", None)
    for key in ("update_config", "rollback_config"):
        update = deploy.get(key) or {}
        if update.get("order") == "start-first":  # a host port cannot be held twice on one node
            update["order"] = "stop-first"


def with_service_labels(rendered: str, labels_for: Callable[[str, dict[str, Any]], dict[str, str]]) -> str:
    """Add ``labels_for(service key, service)`` to each service's deploy.labels (list or mapping)."""
    doc = yaml.safe_load(rendered)
    for key, svc in doc["services"].items():
        labels = labels_for(key, svc)
        if not labels:
            continue
        deploy = svc.setdefault("deploy", {})
        current = deploy.get("labels") or {}
        if isinstance(current, list):
            current = dict(str(x).split("=", 1) if "=" in str(x) else (str(x), "") for x in current)
        deploy["labels"] = {**current, **labels}
    return yaml.safe_dump(doc, sort_keys=False)


def with_sysctls(rendered: str, sysctls: dict[str, str]) -> str:
    """Add ``sysctls`` to every service (list or mapping form); a service's own value wins.
    IPVS keeps these per network namespace, so the host's /etc/sysctl.d cannot reach a
    service's containers: the runbook sets them in the stack file."""
    doc = yaml.safe_load(rendered)
    for svc in doc["services"].values():
        current = svc.get("sysctls") or {}
        if isinstance(current, list):
            current = dict(str(x).split("=", 1) if "=" in str(x) else (str(x), "") for x in current)
        svc["sysctls"] = {**{k: str(v) for k, v in sysctls.items()}, **current}
    return yaml.safe_dump(doc, sort_keys=False)


def published_ports(rendered: str) -> list[int]:
    doc = yaml.safe_load(rendered)
    out = []
    for svc in doc["services"].values():
        for p in svc.get("ports") or []:
            out.append(int(p["published"]) if isinstance(p, dict) else int(str(p).split(":")[0]))
    return out


# --- commands ------------------------------------------------------------------------------

def config_create_cmd(config: str) -> str:
    """Create swarm config ``config`` from stdin (the app's .env)."""
    return join(["docker", "config", "create", config, "-"])


def config_rm_cmd(config: str) -> str:
    return join(["docker", "config", "rm", config])


def deploy_cmd(stack_file: str, stack: str) -> str:
    """Deploy (or update) ``stack`` from ``stack_file`` on the manager, with the registry login."""
    return join(["docker", "stack", "deploy", "--with-registry-auth", "--prune", "-c", stack_file, stack])


def tasks_state_cmd(stack: str) -> str:
    """Up to five of the stack's tasks that should run: name, state, error (why it did not converge)."""
    return (f"docker stack ps --no-trunc --filter desired-state=running --format "
            f"'{{{{.Name}}}} {{{{.CurrentState}}}} {{{{.Error}}}}' {quote(stack)} | head -5")


def rollback_cmd(service: str) -> str:
    """Return ``service`` to its previous spec (swarm keeps one); --detach: the task waits itself."""
    return join(["docker", "service", "update", "--rollback", "--detach", service])


def http_answers_cmd(port: int) -> str:
    """A published port answers HTTP on this node (curl fails on an error status)."""
    return join(["curl", "-fsS", "-m", "5", f"http://127.0.0.1:{port}/"])


NAMESPACE_LABEL = "com.docker.stack.namespace"


def services_fact(stack: str) -> Fact:
    """A stack's services, read from the engine API with their running and desired task counts
    (``status=true``: API 1.41, Docker 20.10+). One curl instead of three docker CLI runs."""
    path = f"/services?status=true&filters={engine_filters(label=[f'{NAMESPACE_LABEL}={stack}'])}"
    return engine_fact("services", path, services_by_name)


ROLLED_BACK = ("rollback_completed", "rollback_paused")  # swarm's UpdateStatus.State after a rollback


def services_by_name(services: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> {image, replicas: (running, desired) or None on an older engine, updating,
    update: the last update's state ("" when none since the spec last changed) and message,
    id, container: the spec's ContainerSpec (what each task should run), previous: a spec to
    roll back to exists}."""
    out = {}
    for svc in services:
        spec, status = svc.get("Spec") or {}, svc.get("ServiceStatus")
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        update = svc.get("UpdateStatus") or {}
        out[spec.get("Name", "")] = {
            "image": container.get("Image", ""),
            "replicas": (status.get("RunningTasks", 0), status.get("DesiredTasks", 0)) if status else None,
            "updating": update.get("State") in ("updating", "rollback_started"),
            "update": update.get("State", ""),
            "message": update.get("Message", ""),
            "id": svc.get("ID", ""),
            "container": container,
            "previous": bool(svc.get("PreviousSpec")),
            "spec": spec,
        }
    return out


# --- drift: what runs against what swarmbook deployed ----------------------------------------

SNAPSHOT = "services.json"  # beside the stack file: each service's Spec as it ran after the deploy
# Not desired state: stack deploy keeps ForceUpdate as it finds it (registry.refresh-auth bumps it).
_NOT_STATE = {("TaskTemplate", "ForceUpdate")}


def snapshot_text(services: dict[str, dict[str, Any]]) -> str:
    """What stack.deploy records after a deploy converged: {service: Spec}, stable text."""
    return json.dumps({n: s["spec"] for n, s in sorted(services.items())}, sort_keys=True, indent=1) + "\n"


def _diff(old: Any, new: Any, path: tuple[str, ...], out: list[str]) -> None:
    if path in _NOT_STATE or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            _diff(old.get(k, _GONE), new.get(k, _GONE), (*path, str(k)), out)
        return
    where = ".".join(path)
    if old is _GONE:
        out.append(f"{where} added ({_short(new)})")
    elif new is _GONE:
        out.append(f"{where} removed (was {_short(old)})")
    else:
        out.append(f"{where} {_short(old)} -> {_short(new)}")


_GONE = object()


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 40 else text[:37] + "..."


def drift(snapshot_json: str | None, services: dict[str, dict[str, Any]]) -> list[str]:
    """Differences, per service and field, between the specs recorded after the last deploy and
    the specs that run now (someone's ``docker service update``, Portainer, another tool's
    deploy); [] when they match or nothing was recorded yet."""
    if not snapshot_json:
        return []
    try:
        recorded = json.loads(snapshot_json)
    except json.JSONDecodeError:
        return ["the recorded specs cannot be read"]
    out: list[str] = []
    for name in sorted(set(recorded) | set(services)):
        if name not in services:
            out.append(f"{name}: removed")
        elif name not in recorded:
            out.append(f"{name}: not deployed from the stack file")
        else:
            fields: list[str] = []
            _diff(recorded[name], services[name]["spec"], (), fields)
            out += [f"{name}: {f}" for f in fields]
    return out


def running_tasks_fact() -> Fact:
    """The swarm's tasks meant to run: service ID, state and the ContainerSpec each was made from."""
    path = f"/tasks?filters={engine_filters(**{'desired-state': ['running']})}"
    return engine_fact("tasks", path, lambda tasks: [
        {"service": t.get("ServiceID", ""), "state": (t.get("Status") or {}).get("State", ""),
         "container": (t.get("Spec") or {}).get("ContainerSpec") or {}} for t in tasks], absent=[])


def stale_tasks(services: dict[str, dict[str, Any]], tasks: list[dict[str, Any]]) -> dict[str, int]:
    """Per service, its tasks meant to run that were made from another ContainerSpec than the
    service's: an update the orchestrator has not rolled out yet. Right after ``docker stack
    deploy`` the old tasks still run and count as running (swarm resets UpdateStatus when the
    spec changes), so counts alone would call a stack converged before its update began."""
    by_id = {s["id"]: name for name, s in services.items()}
    out = {name: 0 for name in services}
    for t in tasks:
        name = by_id.get(t["service"])
        if name is not None and t["container"] != services[name]["container"]:
            out[name] += 1
    return out


def rolled_back(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Services whose last update swarm rolled back (update_config failure_action: rollback,
    or ``stack.rollback``): name -> swarm's message."""
    return {n: s["message"] or s["update"] for n, s in services.items() if s["update"] in ROLLED_BACK}


def configs_fact(prefix: str) -> Fact:
    """Names of the swarm configs whose name starts with ``prefix`` (engine API)."""
    return engine_fact("configs", f"/configs?filters={engine_filters(name=[prefix])}",
                       lambda configs: {c["Spec"]["Name"] for c in configs}, absent=frozenset())
