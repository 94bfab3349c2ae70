"""templates/: the app-repo pipeline and deploy.test.yml render with stack.deploy's variables."""

from pathlib import Path

import yaml

from swarmbook import stackcmd
from swarmbook.config import parse

ROOT = Path(__file__).resolve().parents[2] / "templates"


def test_deploy_test_yml_renders_like_stack_deploy():
    s = parse("REGISTRY=registry.x:5000\nPROJECT=demo\nIMAGE_TAG=test\nSTACK_PUBLISH_MODE=host\n", environ={})
    values = stackcmd.template_vars(s, "demo", "APP_NAME=demo\n")
    doc = yaml.safe_load(stackcmd.render((ROOT / "deploy.test.yml").read_text(), values, source="deploy.test.yml"))
    svc = doc["services"]["demo"]
    assert svc["image"] == "registry.x:5000/demo:test"
    assert svc["configs"][0]["source"] == values["ENV_CONFIG"] and values["ENV_CONFIG"] in doc["configs"]
    assert svc["networks"] == ["default-network"] and svc["ports"][0]["mode"] == "host"


def test_gitlab_ci_builds_on_test_and_tags_and_deploys_with_the_deploy_runners():
    ci = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    assert ci["build_test"]["only"] == ["test"] and ci["build_tag"]["only"] == ["tags"]
    assert ci["build_test"]["tags"] == ["builder"] and ci["build_tag"]["tags"] == ["builder"]
    assert ci["deploy_test"]["tags"] == ["test"] and ci["deploy_production"]["tags"] == ["tags"]
    assert any("docker push" in line for line in ci["build_test"]["script"])
    assert any("stack.deploy" in line for line in ci["deploy_test"]["script"])
