"""gitlab.* and runner.* on the real lab hosts, against clearly named stand-ins.

GitLab: the image is swarmbook-standin/gitlab-ce (swarmbook/lab/standin): it writes gitlab.rb
and initial_root_password like GitLab, reports health through a docker HEALTHCHECK after a few
seconds, and its `gitlab-ctl reconfigure` only records that it ran. NOT proved here: that real
GitLab starts with these volumes/ports, reads the SMTP block, or sends mail; the 22-port
handover to a real GitLab sshd.

Runner: runner.install adds a real signed apt repository (the lab's, laid out like
packages.gitlab.com) and installs a stand-in gitlab-runner package from it; git comes from
Debian. The lab's hosts file has a builder runner (RUNNERS, h2) and a deploy runner
(DEPLOY_RUNNERS=h1, the manager, tags test); runner.* acts on both. NOT proved: packages.gitlab.com
itself, the RHEL/yum path (unit tests check those commands), that GitLab accepts the token, keeps
a glrt- runner's tags or that jobs run.
"""

import os
import stat

import re

import pytest

from swarmbook.lab import builders, layout

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def port(lab, h) -> int:
    return builders.recorded_ports(lab.hosts_env.read_text()).get(h.addr, 22)


def run(lab, h, cmd, **kw):
    return ssh(lab, h, cmd, port=port(lab, h), **kw)


def prepared(lab):
    """Docker, mirrors, a swarm, the shared network and registry logins, by the real tasks (idempotent)."""
    out = sb(lab, "docker.install", "docker.mirrors", "swarm.init", "net.create", "registry.login")
    assert out.rc == 0, out.stdout + out.stderr
    return lab


@pytest.fixture(scope="module")
def cluster(lab):
    return prepared(lab)


def gitlab_host(lab):
    return lab.hosts[0]


def test_gitlab_up_refuses_port_22_while_sshd_holds_it(cluster, tmp_path):
    lab = cluster
    other = lab.hosts[1]  # sshd on 22 there; a hosts file naming it as GITLAB
    env = tmp_path / "hosts.env"
    env.write_text(re.sub(r"(?m)^GITLAB=.*$", f"GITLAB={other.addr}", lab.hosts_env.read_text()))
    env.chmod(0o600)
    out = sb(lab, "gitlab.up", hosts_env=str(env))
    assert out.rc == 1
    (fail,) = out.failed
    assert "sshd still listens on 22" in fail["reason"] and "sshd.move-port" in fail["reason"]
    assert out.changed == 0
    assert run(lab, other, "docker ps -aq --filter name=^gitlab$").stdout.strip() == ""
    assert run(lab, other, "test -e /srv/gitlab", check=False).returncode != 0


def test_gitlab_up_after_sshd_moved_then_nothing_to_do(cluster):
    lab = cluster
    h = gitlab_host(lab)
    if port(lab, h) == 22:
        moved = sb(lab, "sshd.move-port")
        assert moved.rc == 0, moved.stdout + moved.stderr
    assert port(lab, h) == 2222
    out = sb(lab, "gitlab.up")
    assert out.rc == 0, out.stdout + out.stderr
    assert any(e["step"] == "GitLab healthy" for e in out.steps("ok"))
    info = run(lab, h, "docker inspect gitlab --format '{{.HostConfig.RestartPolicy.Name}} {{.Config.Hostname}} "
                       "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}'").stdout.split()
    assert info[:2] == ["always", "gitlab.lab"]
    assert {"/srv/gitlab/config:/etc/gitlab", "/srv/gitlab/logs:/var/log/gitlab",
            "/srv/gitlab/data:/var/opt/gitlab"} <= set(info[2:])
    ports = run(lab, h, "docker port gitlab").stdout
    assert "22/tcp -> 0.0.0.0:22" in ports and "80/tcp -> 0.0.0.0:80" in ports
    assert "swarmbook lab GitLab stand-in" in run(lab, h, "curl -fsS http://127.0.0.1/").stdout
    again = sb(lab, "gitlab.up")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_root_password_once_then_to_a_0600_file(cluster, tmp_path):
    lab = cluster
    h = gitlab_host(lab)
    run(lab, h, "rm -f /srv/gitlab/config/.swarmbook-root-password-shown")
    real = run(lab, h, "docker exec gitlab cat /etc/gitlab/initial_root_password").stdout
    pw = [ln.split()[1] for ln in real.splitlines() if ln.startswith("Password:")][0]
    first = sb(lab, "gitlab.root-password", json_lines=False)
    assert first.rc == 0 and pw in first.stdout
    second = sb(lab, "gitlab.root-password", json_lines=False)
    assert second.rc == 0 and pw not in second.stdout + second.stderr and "already shown" in second.stdout
    target = tmp_path / "root.pw"
    out = sb(lab, "gitlab.root-password", "--to", str(target), json_lines=False)
    assert out.rc == 0 and pw not in out.stdout + out.stderr
    assert target.read_text() == pw + "\n" and stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sb(lab, "gitlab.root-password", "--to", str(target)).changed == 0


def test_smtp_settings_in_gitlab_rb_then_reconfigure_only_on_change(cluster, tmp_path):
    lab = cluster
    h = gitlab_host(lab)
    env = tmp_path / "hosts.env"
    env.write_text(lab.hosts_env.read_text() + "GITLAB_SMTP_ADDRESS=smtp.exmail.qq.com\n"
                   "GITLAB_SMTP_USER=git@example.com\nGITLAB_SMTP_DOMAIN=exmail.qq.com\n"
                   "GITLAB_EMAIL_FROM=git@example.com\n")
    env.chmod(0o600)
    secret = "smtp-pw-#{not-interpolated}\"x"
    out = sb(lab, "gitlab.smtp", hosts_env=str(env), env={"GITLAB_SMTP_PASSWORD": secret})
    assert out.rc == 0, out.stdout + out.stderr
    assert secret not in out.stdout + out.stderr
    rb = run(lab, h, "cat /srv/gitlab/config/gitlab.rb").stdout
    assert "gitlab_rails['smtp_enable'] = true" in rb
    assert "gitlab_rails['smtp_address'] = \"smtp.exmail.qq.com\"" in rb
    assert "gitlab_rails['smtp_port'] = 465" in rb
    assert "gitlab_rails['smtp_password'] = \"smtp-pw-\\#{not-interpolated}\\\"x\"" in rb
    assert "# gitlab_rails['smtp_address']" not in rb  # the commented template line was replaced
    assert run(lab, h, "stat -c %a /srv/gitlab/config/gitlab.rb").stdout.strip() == "600"
    log = run(lab, h, "cat /srv/gitlab/logs/reconfigure.log").stdout.splitlines()
    again = sb(lab, "gitlab.smtp", hosts_env=str(env), env={"GITLAB_SMTP_PASSWORD": secret})
    assert again.rc == 0 and again.changed == 0, again.stdout
    assert run(lab, h, "cat /srv/gitlab/logs/reconfigure.log").stdout.splitlines() == log  # not rerun
    changed = sb(lab, "gitlab.smtp", hosts_env=str(env), env={"GITLAB_SMTP_PASSWORD": secret + "2"})
    assert changed.rc == 0 and changed.changed == 2  # gitlab.rb, then reconfigure
    assert len(run(lab, h, "cat /srv/gitlab/logs/reconfigure.log").stdout.splitlines()) == len(log) + 1
    # a run killed after writing gitlab.rb, before reconfigure finished: the next run reconfigures
    run(lab, h, "rm /srv/gitlab/config/.swarmbook-applied")
    healed = sb(lab, "gitlab.smtp", hosts_env=str(env), env={"GITLAB_SMTP_PASSWORD": secret + "2"})
    assert healed.rc == 0 and [s["step"] for s in healed.steps("changed")] == ["gitlab-ctl reconfigure"]
    assert "not applied" in healed.steps("changed")[0]["reason"]
    assert len(run(lab, h, "cat /srv/gitlab/logs/reconfigure.log").stdout.splitlines()) == len(log) + 2
    assert sb(lab, "gitlab.smtp", hosts_env=str(env), env={"GITLAB_SMTP_PASSWORD": secret + "2"}).changed == 0


def test_runner_install_from_repository_with_new_enough_git(cluster):
    lab = cluster
    r = lab.hosts[1]  # RUNNERS
    out = sb(lab, "runner.install")
    assert out.rc == 0, out.stdout + out.stderr
    src = run(lab, r, "cat /etc/apt/sources.list.d/runner_gitlab-runner.list").stdout
    release = layout.ENGINES[r.engine].release  # the host's own codename (bookworm, trixie)
    assert src.startswith("deb [signed-by=/usr/share/keyrings/runner_gitlab-runner-archive-keyring.gpg] "
                          f"http://registry.lab:5080/runner/gitlab-runner/debian/ {release} main")
    assert "swarmbook-standin" in run(lab, r, "gitlab-runner --version").stdout
    major = int(run(lab, r, "git version").stdout.split()[2].split(".")[0])
    assert major >= 2
    assert run(lab, r, "id -u gitlab-runner", check=False).returncode == 0
    assert "swarmbook-standin" in run(lab, lab.hosts[0], "gitlab-runner --version").stdout  # the deploy runner
    again = sb(lab, "runner.install")
    assert again.rc == 0 and again.changed == 0, again.stdout


def test_runner_register_both_token_kinds_token_never_in_argv_or_output(cluster):
    lab = cluster
    r = lab.hosts[1]
    run(lab, r, "printf 'concurrent = 1\\ncheck_interval = 0\\n' > /etc/gitlab-runner/config.toml")
    legacy = "GR1348941legacy-secret-token"
    out = sb(lab, "runner.register", "--role", "builder", "--name", "builder-1", "--tags", "builder",
             "--url", "http://gitlab.lab/", env={"RUNNER_TOKEN": legacy})
    assert out.rc == 0, out.stdout + out.stderr
    assert legacy not in out.stdout + out.stderr
    auth = "glrt-auth-secret-token"
    out = sb(lab, "runner.register", "--role", "builder", "--name", "deploy-1", "--executor", "shell",
             "--clone-url", "http://172.29.0.1/", "--url", "http://gitlab.lab/", env={"RUNNER_TOKEN": auth})
    assert out.rc == 0, out.stdout + out.stderr
    toml = run(lab, r, "cat /etc/gitlab-runner/config.toml").stdout
    assert toml.count("[[runners]]") == 2
    assert 'name = "builder-1"' in toml and "tag list" in toml and ": builder" in toml
    assert 'name = "deploy-1"' in toml and f'token = "{auth}"' in toml and 'clone_url = "http://172.29.0.1/"' in toml
    again = sb(lab, "runner.register", "--role", "builder", "--name", "deploy-1", "--url", "http://gitlab.lab/",
               env={"RUNNER_TOKEN": auth})
    assert again.rc == 0 and again.changed == 0
    assert run(lab, r, "cat /etc/gitlab-runner/config.toml").stdout.count("[[runners]]") == 2


def runners(toml: str) -> dict[str, str]:
    """name -> that [[runners]] section of config.toml."""
    out = {}
    for section in toml.split("[[runners]]")[1:]:
        out[re.search(r'name = "([^"]*)"', section).group(1)] = section
    return out


def test_builder_and_deploy_runner_from_one_hosts_file_each_with_its_token_and_tags(cluster):
    lab = cluster
    builder, manager = lab.hosts[1], lab.hosts[0]  # RUNNERS, DEPLOY_RUNNERS in the lab's hosts file
    for h in (builder, manager):
        run(lab, h, "printf 'concurrent = 1\\ncheck_interval = 0\\n' > /etc/gitlab-runner/config.toml")
    tokens = {"RUNNER_TOKEN": "GR1348941builder-secret", "DEPLOY_RUNNER_TOKEN": "GR1348941deploy-secret"}
    out = sb(lab, "runner.register", "--url", "http://gitlab.lab/", env=tokens)
    assert out.rc == 0, out.stdout + out.stderr
    assert not any(t in out.stdout + out.stderr for t in tokens.values())
    assert {e["host"] for e in out.steps("changed")} == {builder.addr, manager.addr} and out.changed == 2
    b = runners(run(lab, builder, "cat /etc/gitlab-runner/config.toml").stdout)
    d = runners(run(lab, manager, "cat /etc/gitlab-runner/config.toml").stdout)
    assert list(b) == [builder.addr] and list(d) == [f"{manager.addr}-deploy"]
    assert b[builder.addr].rstrip().endswith("): builder")  # the stand-in's record of --tag-list
    assert d[f"{manager.addr}-deploy"].rstrip().endswith("): test")
    again = sb(lab, "runner.register", "--url", "http://gitlab.lab/", env=tokens)
    assert again.rc == 0 and again.changed == 0, again.stdout
    # --role deploy touches only the manager; a missing deploy token is refused before any host
    only = sb(lab, "runner.register", "--role", "deploy", "--url", "http://gitlab.lab/", env=tokens)
    assert only.rc == 0 and only.changed == 0 and {e["host"] for e in only.steps("ok")} == {manager.addr}
    refused = sb(lab, "runner.register", "--url", "http://gitlab.lab/", env={"RUNNER_TOKEN": tokens["RUNNER_TOKEN"]},
                 json_lines=False)
    assert refused.rc == 2 and "DEPLOY_RUNNER_TOKEN is empty" in refused.stderr


def test_runner_concurrency_and_grant(cluster):
    lab = cluster
    r = lab.hosts[1]
    out = sb(lab, "runner.concurrency", "--concurrent", "5")
    assert out.rc == 0, out.stdout + out.stderr
    toml = run(lab, r, "cat /etc/gitlab-runner/config.toml").stdout
    assert toml.splitlines()[0] == "concurrent = 5" and "concurrent = 1" not in toml
    assert sb(lab, "runner.concurrency", "--concurrent", "5").changed == 0
    pw = (lab.state_dir / "registry.password").read_text().strip()
    out = sb(lab, "runner.grant", json_lines=False)
    assert out.rc == 0, out.stdout + out.stderr
    assert pw not in out.stdout + out.stderr
    for h in (r, lab.hosts[0]):  # the builder and the deploy runner
        assert "docker" in run(lab, h, "id -nG gitlab-runner").stdout.split()
        assert run(lab, h, "head -1 /etc/gitlab-runner/config.toml").stdout.strip() == "concurrent = 5"
    # the runner user itself can use Docker and pull from the authenticated registry
    pulled = run(lab, r, "su -s /bin/sh gitlab-runner -c 'docker pull -q registry.lab:5000/library/busybox:latest'")
    assert "registry.lab:5000/library/busybox" in pulled.stdout
    again = sb(lab, "runner.grant")
    assert again.rc == 0 and again.changed == 0, again.stdout
