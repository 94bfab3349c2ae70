"""templates/: the app-repo pipeline and deploy.test.yml. The pipeline's jobs are run here in bash
(docker and inv are stubs that record their arguments), so what the build job pushes and what
stack.deploy then deploys are compared as values, with a registry namespace the hosts file lacks."""

import os
import shutil
import string
import subprocess
from pathlib import Path

import pytest
import yaml

from swarmbook import stackcmd
from swarmbook.config import parse

ROOT = Path(__file__).resolve().parents[2] / "templates"
CI = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
# The deploy runner's hosts file: REGISTRY is the host the nodes log into, PROJECT another name
HOSTS_ENV = "REGISTRY=registry.x:5000\nPROJECT=other\nIMAGE_TAG=latest\nSTACK_PUBLISH_MODE=host\n"
PIPELINE = {"CI_COMMIT_REF_NAME": "v1.2.3", "REGISTRY_URL": "registry.x:5000/test_namespace"}


def run_job(name: str, tmp_path: Path) -> dict:
    """Run one job's before_script + script as GitLab's shell executor would; return what it did."""
    job = CI[name]
    env = {**CI["variables"], **PIPELINE}
    env.update({k: string.Template(str(v)).safe_substitute(env) for k, v in job.get("variables", {}).items()})
    if "environment" in job:
        env["CI_ENVIRONMENT_NAME"] = job["environment"]["name"]
    work, stub, stacks = tmp_path / name / "repo", tmp_path / name / "bin", tmp_path / name / "stacks"
    for d in (work, stub):
        d.mkdir(parents=True)
    shutil.copy(ROOT / "deploy.test.yml", work / "deploy.test.yml")
    for tool in ("docker", "inv"):  # each call: one argument per line, then a blank line
        (stub / tool).write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done >> {tmp_path / name}/{tool}.log\n"
                                 f"echo >> {tmp_path / name}/{tool}.log\n")
        (stub / tool).chmod(0o755)
    env.update(STACKS_DIR=str(stacks), SWARMBOOK_HOME="/opt/swarmbook", APP_ENV=str(work / "app.env"),
               PATH=f"{stub}:{os.environ['PATH']}")
    lines = job.get("before_script", CI.get("default", {}).get("before_script", [])) + job["script"]
    subprocess.run(["bash", "-e", "-c", "\n".join(lines)], cwd=work, env=env, check=True)

    def calls(tool):
        log = tmp_path / name / f"{tool}.log"
        return [c.split("\n") for c in log.read_text().strip("\n").split("\n\n")] if log.exists() else []
    stack = stacks / env["PROJECT_NAME"] / "deploy.yml"
    return {"docker": calls("docker"), "inv": calls("inv"), "stack": stack.read_text() if stack.exists() else None}


def deployed(job: dict) -> dict:
    """What stack.deploy renders from the stack file the job wrote, with its command line's values."""
    (argv,) = job["inv"]
    i = argv.index("stack.deploy")
    name, tag = argv[i + 1], argv[argv.index("--tag") + 1]
    values = stackcmd.template_vars(parse(HOSTS_ENV, environ={}), name, "APP_NAME=demo\n", IMAGE_TAG=tag)
    doc = yaml.safe_load(stackcmd.render(job["stack"], values, source="deploy.yml"))
    return doc["services"][name]


@pytest.mark.parametrize("build, deploy, env_name", [("build_test", "deploy_test", "test"),
                                                     ("build_tag", "deploy_production", "production")])
def test_the_image_deployed_is_the_image_pushed_and_app_env_is_the_environment(tmp_path, build, deploy, env_name):
    built = run_job(build, tmp_path)
    (b, ), (push, ) = ([c for c in built["docker"] if c[0] == verb] for verb in ("build", "push"))
    pushed = push[1]
    assert pushed.startswith("registry.x:5000/test_namespace/demo:") and b[b.index("-t") + 1] == pushed
    svc = deployed(run_job(deploy, tmp_path))
    assert svc["image"] == pushed  # not registry.x:5000/other:..., which the hosts file alone would give
    assert f"APP_ENV={env_name}" in svc["environment"] and "APP_PROJECT=demo" in svc["environment"]


def test_production_deploys_the_git_tag_and_never_the_test_image(tmp_path):
    svc = deployed(run_job("deploy_production", tmp_path))
    assert svc["image"] == "registry.x:5000/test_namespace/demo:v1.2.3" and "APP_ENV=test" not in svc["environment"]


def test_deploy_test_yml_without_the_pipeline_renders_like_stack_deploy():
    s = parse("REGISTRY=registry.x:5000\nPROJECT=demo\nIMAGE_TAG=test\nSTACK_PUBLISH_MODE=host\n", environ={})
    values = stackcmd.template_vars(s, "demo", "APP_NAME=demo\n")
    text = (ROOT / "deploy.test.yml").read_text().replace("${DEPLOY_ENV}", "test")
    doc = yaml.safe_load(stackcmd.render(text, values, source="deploy.test.yml"))
    svc = doc["services"]["demo"]
    assert svc["image"] == "registry.x:5000/demo:test"
    assert svc["configs"][0]["source"] == values["ENV_CONFIG"] and values["ENV_CONFIG"] in doc["configs"]
    assert svc["networks"] == ["default-network"] and svc["ports"][0]["mode"] == "host"


def test_gitlab_ci_builds_on_test_and_tags_and_deploys_with_the_deploy_runners():
    on_test, on_tag = [{"if": '$CI_COMMIT_BRANCH == "test"'}], [{"if": "$CI_COMMIT_TAG"}]
    assert CI["build_test"]["rules"] == CI["deploy_test"]["rules"] == on_test
    assert CI["build_tag"]["rules"] == CI["deploy_production"]["rules"] == on_tag
    assert not any("only" in job or "except" in job for job in CI.values() if isinstance(job, dict))
    assert CI["build_test"]["tags"] == ["builder"] and CI["build_tag"]["tags"] == ["builder"]
    assert CI["deploy_test"]["tags"] == ["test"] and CI["deploy_production"]["tags"] == ["tags"]
    # the deploy runners' default tags: DEPLOY_RUNNER_TAGS=test in hosts.env, tags on production's
    assert parse("", environ={})["DEPLOY_RUNNER_TAGS"] == tuple(CI["deploy_test"]["tags"])
