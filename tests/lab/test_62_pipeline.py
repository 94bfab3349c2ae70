"""The app repository's pipeline (templates/.gitlab-ci.yml) run by a real GitLab CI engine,
gitlab-ci-local (scripts/outer-setup.sh installs it), against the lab: per branch and tag, what
was built, pushed and deployed.

Where the jobs ran: gitlab-ci-local runs a job's script where it runs itself (its shell
executor), here on this machine. The build job's `docker build` and `docker push` went to the
builder runner's engine (the first RUNNERS host) as its gitlab-runner user over SSH
(DOCKER_HOST=ssh://gitlab-runner@HOST), with the registry login runner.grant wrote for that user;
the deploy job ran here the way it runs on a deploy runner (swarmbook checked out at
SWARMBOOK_HOME, a hosts file at SWARMBOOK_ENV), and its stack.deploy reached the manager over
SSH. The lab's hosts have no Node.js and no swarmbook checkout, so the jobs' shells are not on the
runner hosts themselves.

Not proven here: GitLab picking a runner by the jobs' `tags:` (gitlab-ci-local ignores them),
GitLab's own tag pipelines (gitlab-ci-local has no tag ref: the tag run sets CI_COMMIT_TAG and
CI_COMMIT_REF_NAME as GitLab does), GitLab storing the File variable APP_ENV (gitlab-ci-local
writes it to a file the same way).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from dotenv import dotenv_values

from .sb import REPO, recorded_port, ssh, until

pytestmark = pytest.mark.lab

GCL = Path("/opt/swarmbook/gitlab-ci-local/node_modules/.bin/gitlab-ci-local")
PROJECT = "ciapp"
PORT = 9611  # the demo stack publishes 9501; this app's copy of deploy.test.yml publishes 9611
NAMESPACE = "ci"


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@lab", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@lab"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture(scope="module")
def app(lab, tmp_path_factory):
    """An app repository (the demo app, the template pipeline and deploy.test.yml), the runner's
    SSH login and registry login for docker, and a deploy runner's hosts file."""
    assert GCL.exists(), f"{GCL} missing: scripts/outer-setup.sh installs it"
    roles = dotenv_values(lab.hosts_env)
    # hosts.env entries are ADDR or ADDR:PORT (sshd.move-port records the port)
    builder, manager = (roles[k].split(",")[0].split(":")[0] for k in ("RUNNERS", "MANAGERS"))
    tmp = tmp_path_factory.mktemp("pipeline")
    repo, home, stacks, dockercfg, bin_ = tmp / "app", tmp / "home", tmp / "stacks", tmp / "docker", tmp / "bin"
    for d in (repo, home, stacks, dockercfg, bin_):
        d.mkdir(parents=True)
    shutil.copy(REPO / "templates" / ".gitlab-ci.yml", repo)
    deploy = (REPO / "templates" / "deploy.test.yml").read_text()
    assert '"9501:9501"' in deploy
    (repo / "deploy.test.yml").write_text(deploy.replace('"9501:9501"', f'"{PORT}:9501"'))
    for f in ("Dockerfile", "start.sh"):
        shutil.copy(REPO / "stacks" / "demo" / "app" / f, repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "app")

    # The builder's gitlab-runner user: lab's key authorized (a lab-only step: a real runner runs
    # the job on its own host), and its registry login (runner.grant) as docker's client config.
    pub = Path(f"{lab.key}.pub").read_text().strip()
    ssh(lab, builder, "install -d -m 700 -o gitlab-runner -g gitlab-runner ~gitlab-runner/.ssh && "
                      f"echo '{pub}' > ~gitlab-runner/.ssh/authorized_keys && "
                      "chown gitlab-runner: ~gitlab-runner/.ssh/authorized_keys")
    cfg = ssh(lab, builder, "cat ~gitlab-runner/.docker/config.json").stdout
    assert roles["REGISTRY"] in json.loads(cfg)["auths"], "runner.grant left no registry login"
    (dockercfg / "config.json").write_text(cfg)
    (dockercfg / "config.json").chmod(0o600)
    # docker's ssh:// transport runs `ssh` from PATH, and OpenSSH reads the passwd entry's home,
    # not $HOME: an `ssh` in front of the real one gives it the lab's key and host keys (verified).
    (tmp / "ssh_config").write_text(
        f"Host *\n  IdentityFile {lab.key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {lab.known_hosts}\n"
        "  StrictHostKeyChecking yes\n  LogLevel ERROR\n")
    (bin_ / "ssh").write_text(f'#!/bin/sh\nexec {shutil.which("ssh")} -F {tmp / "ssh_config"} "$@"\n')
    (bin_ / "ssh").chmod(0o755)

    hosts_env = tmp / "hosts.env"
    hosts_env.write_text(lab.hosts_env.read_text() + f"\nSTACKS_PATH={stacks}\n")
    # the project's CI/CD variables: gitlab-ci-local reads them from this file in its working
    # folder (a --variables-file is taken relative to it); kept out of git, as GitLab keeps them
    variables = repo / ".gitlab-ci-local-variables.yml"
    (repo / ".git" / "info" / "exclude").write_text(".gitlab-ci-local-variables.yml\n.gitlab-ci-local/\n")
    plain = {  # typed explicitly: gitlab-ci-local makes a value that names an existing path a File variable
        "REGISTRY_URL": f"{roles['REGISTRY']}/{NAMESPACE}", "PROJECT_NAME": PROJECT,
        "STACKS_DIR": str(stacks), "SWARMBOOK_HOME": str(REPO), "SWARMBOOK_ENV": str(hosts_env),
        "SSH_KNOWN_HOSTS": str(lab.known_hosts), "DOCKER_CONFIG": str(dockercfg),
        "DOCKER_HOST": f"ssh://gitlab-runner@{builder}:{recorded_port(lab, builder)}",
    }
    typed = {k: {"type": "variable", "values": {"*": v}} for k, v in plain.items()}
    typed["APP_ENV"] = {"type": "file", "values": {"*": f"APP_NAME={PROJECT}-from-the-pipeline\n"}}
    variables.write_text(json.dumps(typed))  # JSON is YAML: every value quoted exactly
    yield {"repo": repo, "home": home, "path": f"{bin_}:{os.environ['PATH']}", "builder": builder, "manager": manager,
           "registry": roles["REGISTRY"]}
    ssh(lab, manager, f"docker stack rm {PROJECT}", check=False)
    until("the pipeline's stack removed", lambda: ssh(lab, manager, f"docker ps -q -f label=com.docker.stack.namespace={PROJECT}", check=False).stdout.strip()
          + ssh(lab, builder, f"docker ps -q -f label=com.docker.stack.namespace={PROJECT}", check=False).stdout.strip(),
          lambda out: out == "", timeout=60)
    ssh(lab, builder, "rm -f ~gitlab-runner/.ssh/authorized_keys", check=False)


def gcl(app, *args: str, tag: str | None = None) -> subprocess.CompletedProcess:
    """gitlab-ci-local in the app repository; ``tag`` makes it a tag pipeline as GitLab's."""
    argv = [str(GCL), *args]
    if tag:
        argv += ["--variable", f"CI_COMMIT_TAG={tag}", "--variable", f"CI_COMMIT_REF_NAME={tag}",
                 "--ignore-predefined-vars", "CI_COMMIT_REF_NAME"]
    env = {**os.environ, "HOME": str(app["home"]), "PATH": app["path"]}
    return subprocess.run(argv, cwd=app["repo"], capture_output=True, text=True, env=env, timeout=600)


def planned(app, tag: str | None = None) -> set[str]:
    """The jobs this ref's pipeline runs (gitlab-ci-local evaluates the rules)."""
    p = gcl(app, "--list-json", tag=tag)
    assert p.returncode == 0, p.stdout + p.stderr
    return {j["name"] for j in json.loads(p.stdout) if j["when"] != "never"}


def deployed(lab, app) -> tuple[str, str]:
    """(image, APP_ENV) of the pipeline's service as the swarm runs it."""
    p = ssh(lab, app["manager"], f"docker service inspect {PROJECT}_{PROJECT} --format "
                                 "'{{.Spec.TaskTemplate.ContainerSpec.Image}} {{json .Spec.TaskTemplate.ContainerSpec.Env}}'")
    image, env = p.stdout.strip().split(" ", 1)
    return image, next(e.split("=", 1)[1] for e in json.loads(env) if e.startswith("APP_ENV="))


def pushed_digest(lab, app, tag: str) -> str:
    """The digest the builder's engine pushed for ``tag`` (as gitlab-runner built it)."""
    ref = f"{app['registry']}/{NAMESPACE}/{PROJECT}:{tag}"
    out = ssh(lab, app["builder"], f"docker image inspect --format '{{{{json .RepoDigests}}}}' {ref}").stdout
    return next(d.split("@", 1)[1] for d in json.loads(out) if d.startswith(f"{app['registry']}/{NAMESPACE}/{PROJECT}@"))


def run_pipeline(lab, app, tag: str | None = None) -> subprocess.CompletedProcess:
    p = gcl(app, tag=tag)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    print(*(ln.strip() for ln in p.stdout.splitlines() if "finished in" in ln), sep="\n")  # job times
    return p


def serves_everywhere(lab, app) -> None:
    for h in lab.hosts:
        body = until(f"{h.addr}:{PORT} answers", lambda h=h: ssh(lab, app["manager"], f"curl -fsS --max-time 3 http://{h.addr}:{PORT}/",
                                                                  check=False).stdout, lambda out: "APP_NAME=" in out, timeout=60)
        assert f"APP_NAME={PROJECT}-from-the-pipeline" in body, (h.addr, body)


def test_other_branches_run_nothing(lab, app):
    _git(app["repo"], "checkout", "-q", "-b", "feature")
    assert planned(app) == set()
    p = run_pipeline(lab, app)
    assert "PASS" not in p.stdout, p.stdout
    assert ssh(lab, app["manager"], f"docker service ls -q -f name={PROJECT}_", check=True).stdout.strip() == ""


def test_branch_test_builds_pushes_and_deploys_the_test_environment(lab, app):
    _git(app["repo"], "checkout", "-q", "-b", "test")
    assert planned(app) == {"build_test", "deploy_test"}
    p = run_pipeline(lab, app)
    assert "PASS  build_test" in p.stdout and "PASS  deploy_test" in p.stdout, p.stdout[-3000:]
    image, env = deployed(lab, app)
    ref = f"{app['registry']}/{NAMESPACE}/{PROJECT}:test"
    assert image == f"{ref}@{pushed_digest(lab, app, 'test')}", image  # exactly what the build pushed
    assert env == "test"
    serves_everywhere(lab, app)


def test_a_tag_builds_pushes_and_deploys_production(lab, app):
    _git(app["repo"], "checkout", "-q", "main")
    _git(app["repo"], "tag", "v1.0")
    _git(app["repo"], "checkout", "-q", "v1.0")
    assert planned(app, tag="v1.0") == {"build_tag", "deploy_production"}
    p = run_pipeline(lab, app, tag="v1.0")
    assert "PASS  build_tag" in p.stdout and "PASS  deploy_production" in p.stdout, p.stdout[-3000:]
    image, env = deployed(lab, app)
    assert image == f"{app['registry']}/{NAMESPACE}/{PROJECT}:v1.0@{pushed_digest(lab, app, 'v1.0')}", image
    assert env == "production"
    serves_everywhere(lab, app)
