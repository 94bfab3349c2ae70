"""Builders of issue 5 (gitlab, runner, portainer, kong, cron, kernel, containers): exact
commands, secrets kept out of argv, injection attempts quoted."""

import json
import os
import shlex
import shutil
import subprocess

import pytest

from swarmbook import containercmd as C
from swarmbook import croncmd, gitlabcmd, kernelcmd, kongcmd, portainercmd, runnercmd
from swarmbook.config import parse
from swarmbook.shell import Secret, join, quote

from .fakes import tar_bytes


def test_container_run_argv_and_spec_hash_ignore_secret_values():
    c = C.Container(name="mysql", image="mysql:5.7", network="default-network", env_file="/etc/swarmbook/mysql.env",
                    volumes=("/srv/mysql:/var/lib/mysql",), ports=("3306:3306",))
    a, b = c.spec_hash("MYSQL_ROOT_PASSWORD=one\n"), c.spec_hash("MYSQL_ROOT_PASSWORD=two\n")
    assert a == b and a != c.spec_hash("OTHER=x\n")
    argv = c.run_argv(a)
    assert argv[:9] == ["docker", "run", "-d", "--name", "mysql", "--restart", "always", "--label", f"swarmbook.spec={a}"]
    assert ("--env-file", "/etc/swarmbook/mysql.env") in zip(argv, argv[1:]) and argv[-1] == "mysql:5.7"
    with pytest.raises(ValueError):
        C.env_file_text({"A": "x\ny"})


def test_container_plan():
    c = C.Container(name="x", image="i")
    h = c.spec_hash()
    assert C.plan(c, None, h)[0] == "absent"
    assert C.plan(c, {"spec": h, "running": True}, h) == ("", [])
    why, cmds = C.plan(c, {"spec": "old", "running": True}, h)
    assert why == "configuration changed" and cmds[0] == "docker rm -f x"
    assert C.plan(c, {"spec": h, "running": True}, h, env_changed=True)[0] == "secret env changed"
    assert C.plan(c, {"spec": h, "running": False, "status": "exited"}, h) == ("was exited", ["docker start x"])


def test_gitlab_container_ports_and_sshd_listener_parser():
    c = gitlabcmd.container(image="gitlab/gitlab-ce:latest", hostname="gitlab.x.cn", home="/srv/gitlab",
                            ports=("443:443", "80:80", "22:22"))
    assert c.restart == "always" and "/srv/gitlab/config:/etc/gitlab" in c.volumes
    assert gitlabcmd.host_port(c.ports, 22) == 22 and gitlabcmd.host_port(("2022:22",), 22) == 2022
    assert gitlabcmd.host_port(("127.0.0.1:8080:80",), 80) == 8080
    ss = 'LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=301,fd=3))\n'
    assert gitlabcmd.listeners_fact(22).parse(ss, 0) == {"sshd"}
    assert gitlabcmd.listeners_fact(22).parse("", 0) == set()
    assert gitlabcmd.bad_port("22") and not gitlabcmd.bad_port("10.0.0.1:2222:22")


def test_gitlab_smtp_block_replaces_commented_lines_and_escapes_ruby():
    s = parse("GITLAB_SMTP_ADDRESS=smtp.exmail.qq.com\nGITLAB_SMTP_USER=git@x.com\nGITLAB_EMAIL_FROM=git@x.com\n",
              environ={})
    rb = "# gitlab_rails['smtp_enable'] = true\n# gitlab_rails['smtp_port'] = 465\nexternal_url 'http://x'\n"
    out = gitlabcmd.with_settings(rb, gitlabcmd.smtp_settings(s, 'p"#{`id`}\\'))
    assert out.splitlines()[0] == "gitlab_rails['smtp_enable'] = true"
    assert "gitlab_rails['smtp_password'] = \"p\\\"\\#{`id`}\\\\\"" in out
    assert "external_url 'http://x'" in out and out.count("smtp_port") == 1
    assert gitlabcmd.with_settings(out, gitlabcmd.smtp_settings(s, 'p"#{`id`}\\')) == out  # idempotent
    assert gitlabcmd.parse_root_password("# WARNING\n\nPassword: abc123=\n\n# NOTE\n") == "abc123="


def test_runner_repository_per_os_family():
    deb = {"ID": "ubuntu", "VERSION_CODENAME": "jammy"}
    path, text = runnercmd.repo_file("debian", "https://packages.gitlab.com/runner/gitlab-runner", deb)
    assert path == "/etc/apt/sources.list.d/runner_gitlab-runner.list"
    assert text == ("deb [signed-by=/usr/share/keyrings/runner_gitlab-runner-archive-keyring.gpg] "
                    "https://packages.gitlab.com/runner/gitlab-runner/ubuntu/ jammy main\n")
    path, text = runnercmd.repo_file("rhel", "https://packages.gitlab.com/runner/gitlab-runner/",
                                     {"ID": "centos", "VERSION_ID": "7"})
    assert path == "/etc/yum.repos.d/runner_gitlab-runner.repo"
    assert "baseurl=https://packages.gitlab.com/runner/gitlab-runner/el/7/$basearch\n" in text
    assert "gpgkey=https://packages.gitlab.com/runner/gitlab-runner/gpgkey\n" in text
    assert runnercmd.install_cmd("rhel") == "yum install -y gitlab-runner"
    assert runnercmd.install_cmd("debian").endswith("apt-get install -y -q gitlab-runner")
    assert "https://packages.gitlab.com/runner/gitlab-runner/gpgkey" in runnercmd.keyring_cmd(
        "https://packages.gitlab.com/runner/gitlab-runner")


def test_git_version_and_the_centos7_fix():
    assert runnercmd.parse_git_version("git version 1.8.3.1\n") == (1, 8, 3)
    assert runnercmd.parse_git_version("", 127) is None
    assert not runnercmd.git_ok((1, 8, 3)) and runnercmd.git_ok((2, 39, 5))
    fix = runnercmd.git_fix_cmd("rhel", {"VERSION_ID": "7"})
    assert "ius-release-el7.rpm" in fix and "yum remove -y git" in fix and fix.endswith("yum install -y git236")
    # ius-release requires EPEL: epel-release is installed first, in the same && chain
    steps = fix.split(" && ")
    assert steps[0] == "yum install -y epel-release"
    assert steps[1] == "yum install -y https://repo.ius.io/ius-release-el7.rpm"
    assert "epel-release" not in runnercmd.git_fix_cmd("rhel", {"VERSION_ID": "8"})
    assert runnercmd.git_fix_cmd("debian", {}).endswith("apt-get install -y -q git")


def test_debian_key_tools_fact_and_install():
    fact = runnercmd.KEY_TOOLS_FACT
    assert shlex.split(fact.command) == ["dpkg-query", "-W", "-f", "${db:Status-Abbrev} ${Package}\\n",
                                         "curl", "gnupg", "ca-certificates"]
    # captured on Debian 12: curl installed, gnupg removed (config files left), ca-certificates unknown (rc 1)
    assert fact.parse("ii  curl\nrc  gnupg\n", 1) == {"curl"}
    assert fact.parse("", 127) == set()


def test_runner_roles_from_groups_and_role_option():
    groups = {"RUNNERS": {"b1", "both"}, "DEPLOY_RUNNERS": {"d1", "both"}}
    roles = runnercmd.host_roles
    assert roles("b1", groups) == ("builder",) and roles("d1", groups) == ("deploy",)
    assert roles("both", groups) == ("builder", "deploy")
    assert roles("adhoc", groups) == ("builder",)  # fab -H a host no group lists: a builder, as before
    assert roles("adhoc", groups, "deploy") == ("deploy",)
    assert roles("both", groups, "deploy") == ("deploy",) and roles("d1", groups, "deploy") == ("deploy",)
    assert roles("d1", groups, "builder") == () and roles("b1", groups, "deploy") == ()
    assert runnercmd.default_name("10.0.0.5", "builder") == "10.0.0.5"
    assert runnercmd.default_name("10.0.0.5", "deploy") == "10.0.0.5-deploy"
    s = parse("", environ={"DEPLOY_RUNNER_TOKEN": "from-env"})
    assert s["DEPLOY_RUNNER_TAGS"] == ("test",) and s["RUNNER_TAGS"] == ("builder",)
    assert s["DEPLOY_RUNNER_TOKEN"] == Secret("from-env")
    assert parse("DEPLOY_RUNNER_TOKEN=file\n", environ={"DEPLOY_RUNNER_TOKEN": "env"})["DEPLOY_RUNNER_TOKEN"] == Secret("env")


def test_register_reads_the_token_from_stdin_into_the_runner_env_vars():
    auth = runnercmd.register_cmd(url="http://gitlab.x/", name="deploy", executor="shell", kind="auth",
                                  clone_url="http://10.0.0.5/", tags=("test",))
    assert auth.startswith("IFS= read -r CI_SERVER_TOKEN && export CI_SERVER_TOKEN && gitlab-runner register")
    assert "--tag-list" not in auth and "--clone-url http://10.0.0.5/" in auth
    legacy = runnercmd.register_cmd(url="http://gitlab.x/", name="b; rm -rf /", executor="docker", kind="registration",
                                    tags=("builder", "x"), docker_image="docker:24")
    assert "REGISTRATION_TOKEN" in legacy and "--tag-list builder,x" in legacy
    assert "--name 'b; rm -rf /'" in legacy and "--docker-image docker:24" in legacy
    assert runnercmd.token_kind("glrt-abc") == "auth" and runnercmd.token_kind("GR1348941x") == "registration"


def test_runner_names_in_config_toml():
    toml = ('concurrent = 5\n[session_server]\n  name = "not-a-runner"\n[[runners]]\n  name = "builder-1"\n'
            '  [runners.docker]\n    image = "x"\n[[runners]]\n  name = "de\\"ploy"\n')
    assert runnercmd.runner_names(toml) == ["builder-1", 'de"ploy']


def test_portainer_service_and_backup_commands():
    argv = portainercmd.create_argv(image="portainer/portainer", port=9000, publish_mode="ingress")
    assert ("--constraint", "node.labels.portainer == true") in zip(argv, argv[1:])
    assert ("--mount", "type=volume,src=portainer_data,dst=/data") in zip(argv, argv[1:])
    assert "published=9000,target=9000" in argv
    assert "published=9000,target=9000,mode=host" in portainercmd.create_argv(image="p", port=9000, publish_mode="host")
    labelled = portainercmd.with_spec_label(argv, "abc")
    assert labelled[labelled.index("--name") - 1] == "swarmbook.spec=abc"
    backup = portainercmd.backup_cmd("nginx:latest")
    assert "sha256sum" in backup and "portainer_data:/data:ro" in backup
    # the helper's own entrypoint never runs (nginx's prints notes that would land in the tar stream)
    assert "docker run --rm --entrypoint tar -v portainer_data:/data:ro nginx:latest -C / -cf - data" in backup
    assert portainercmd.restore_cmd("reg.x/tools:1").startswith(
        "docker run --rm -i --entrypoint sh -v portainer_data:/data reg.x/tools:1 -c ")
    assert shlex.split(portainercmd.manifest_cmd("h; id"))[:9] == [
        "docker", "run", "--rm", "--entrypoint", "sh", "-v", "portainer_data:/data:ro", "h; id", "-c"]
    assert parse("", environ={})["PORTAINER_HELPER_IMAGE"] == "nginx:latest"  # the runbook's helper


def test_portainer_volume_fact_tells_absent_from_no_answer():
    fact = portainercmd.VOLUME_FACT
    assert fact.command.endswith("http://localhost/volumes/portainer_data") and "curl -sSf" in fact.command
    assert fact.parse('{"Name": "portainer_data"}', 0) is True
    assert fact.parse("", 22) is False  # curl -f: HTTP 404, no such volume
    assert fact.parse("", 7) is None  # the engine's socket did not answer


_tar = tar_bytes


def test_backup_checks_and_manifest():
    good = _tar({"data/portainer.db": b"db", "data/marker.txt": b"m\n"})
    assert portainercmd.check_tar(good) == ""
    assert "unexpected member" in portainercmd.check_tar(_tar({"etc/passwd": b"x"}))
    assert "unexpected member" in portainercmd.check_tar(_tar({"data/../../etc/x": b"x"}))
    assert "not a tar" in portainercmd.check_tar(b"garbage" * 100)
    assert portainercmd.manifest(good).splitlines()[0].endswith("  data/marker.txt")
    digest = portainercmd.sha256(good)
    assert portainercmd.parse_sidecar(portainercmd.sidecar_text(digest, "b.tar")) == digest
    assert portainercmd.backup_name("10.0.0.1", "20260101T000000Z") == "portainer-10.0.0.1-20260101T000000Z.tar"


def test_kong_containers_keep_admin_local_and_secrets_in_env_files():
    gw = kongcmd.gateway("kong:latest", "default-network", "127.0.0.1")
    assert "127.0.0.1:8001:8001" in gw.ports and "8000:8000" in gw.ports and gw.env_file == kongcmd.KONG_ENV
    assert all("PASSWORD" not in k for k, _ in gw.env)
    db = kongcmd.database("postgres:9.6", "default-network")
    assert db.ports == () and ("POSTGRES_DB", "kong") in db.env
    assert kongcmd.bad_users("admin") and not kongcmd.bad_users("a=b c=d")
    assert "may not contain '='" in kongcmd.bad_users("a=b=c")  # kong-dashboard would skip that user
    assert "may not start with '-'" in kongcmd.bad_users("-a=b")  # yargs would read an option
    assert kongcmd.migrations_cmd("kong:2", "net", "bootstrap") == \
        "docker run --rm --network net --env-file /etc/swarmbook/kong.env kong:2 kong migrations bootstrap"


# kong-dashboard's spec hash before its users moved from argv-less KONG_DASHBOARD_AUTH (which the
# real image never read) to the node wrapper: a dashboard created then must be recreated once
DASHBOARD_SPEC_BEFORE_WRAPPER = "ff8af6dacd1f9dea"


def test_kong_dashboard_runs_the_real_cli_under_node_with_users_from_the_env_file():
    dash = kongcmd.dashboard("pgbi/kong-dashboard", "default-network", 8080)
    env = C.env_file_text(kongcmd.dashboard_secrets("admin=s3cret  bob=p'w\"$(id)"))
    assert env == "KONG_DASHBOARD_AUTH=admin=s3cret bob=p'w\"$(id)\n"
    argv = dash.run_argv(dash.spec_hash(env))
    assert argv[argv.index("--publish"):] == [
        "--publish", "8080:8080", "--env", "KONG_DASHBOARD_KONG_URL=http://kong:8001",
        "--env-file", "/etc/swarmbook/kong-dashboard.env", "--entrypoint", "node", "pgbi/kong-dashboard",
        "-e", kongcmd.dashboard_program()]
    line = join(argv)
    assert shlex.split(line) == argv and "s3cret" not in line and "$(id)" not in line
    prog = kongcmd.dashboard_program()
    assert "'" not in prog and "KONG_DASHBOARD_AUTH" in prog and prog.endswith('require("/app/bin/kong-dashboard.js")')
    assert dash.spec_hash(env) != DASHBOARD_SPEC_BEFORE_WRAPPER


def _node_program(tmp_path, env: dict[str, str]):
    """Run the wrapper through a shell (quoted by shell.join) with a CLI that prints what it was given."""
    cli = tmp_path / "kong-dashboard.js"
    cli.write_text("console.log(JSON.stringify({argv: process.argv.slice(1), auth_in_os_argv: "
                   "require('fs').readFileSync('/proc/self/cmdline', 'utf8').includes('pw-1')}))\n")
    line = join(["node", "-e", kongcmd.dashboard_program(str(cli))])
    return subprocess.run(["sh", "-c", line], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True, timeout=30), str(cli)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (the lab test runs it in the image)")
def test_kong_dashboard_wrapper_hands_the_env_users_to_the_cli_in_process_argv_only(tmp_path):
    users = "admin=pw-1 bob=pw'\"$(id)`id`;"
    p, cli = _node_program(tmp_path, {"KONG_DASHBOARD_AUTH": users, "KONG_DASHBOARD_KONG_URL": "http://kong:8001"})
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"argv": [cli, "start", "--kong-url", "http://kong:8001", "--basic-auth",
                                             "admin=pw-1", "bob=pw'\"$(id)`id`;"], "auth_in_os_argv": False}
    for bad in ({"KONG_DASHBOARD_AUTH": "", "KONG_DASHBOARD_KONG_URL": "http://kong:8001"},
                {"KONG_DASHBOARD_AUTH": "admin=a=b", "KONG_DASHBOARD_KONG_URL": "http://kong:8001"},
                {"KONG_DASHBOARD_AUTH": "-v=x", "KONG_DASHBOARD_KONG_URL": "http://kong:8001"},
                {"KONG_DASHBOARD_AUTH": "admin=pw"}):
        refused, _ = _node_program(tmp_path, bad)
        assert refused.returncode == 1 and refused.stdout == "" and "are needed" in refused.stderr, bad


def test_kong_admin_diffs():
    assert kongcmd.service_differs(None, "http://demo:9501") == "absent"
    cur = {"protocol": "http", "host": "demo", "port": 9501, "path": None}
    assert kongcmd.service_differs(cur, "http://demo:9501") == ""
    assert kongcmd.service_differs(cur, "http://demo:9502") == "port differ"
    assert kongcmd.route_differs({"paths": ["/a"]}, "demo", ["/a"]) == ""
    assert kongcmd.route_differs({"paths": ["/a"], "service": {"name": "x"}}, "demo", ["/a"]).startswith("belongs")
    assert kongcmd.split_response('{"a": 1}\n200') == (200, {"a": 1})
    assert kongcmd.split_response("\n404") == (404, None)
    assert not kongcmd.name_ok("a/b") and kongcmd.name_ok("demo-1")


def test_cron_script_quotes_the_command_and_mounts_the_env():
    text = croncmd.script("report", "registry.x/demo:latest", "php bin/hyperf.php x; rm -rf / '$(id)'",
                          env_target="/opt/www/.env", entrypoint="php")
    run_line = [ln for ln in text.splitlines() if ln.startswith("docker run")][0]
    words = shlex.split(run_line.replace('"$basepath', '"/base'))
    assert words[:7] == ["docker", "run", "--rm", "-i", "-v", "/base/.env:/opt/www/.env:ro", "--entrypoint"]
    assert words[8:] == ["registry.x/demo:latest", "php", "bin/hyperf.php", "x;", "rm", "-rf", "/", "$(id)", "</dev/null"] \
        or words[8:-1] == ["registry.x/demo:latest", "php", "bin/hyperf.php", "x;", "rm", "-rf", "/", "$(id)"]
    assert "docker pull -q registry.x/demo:latest" in text
    entry = croncmd.cron_entry("report", "*/5  * * * *", "/opt/c/report/run.sh", "/opt/c/report/cron.log")
    assert "*/5 * * * * root flock -n /run/lock/swarmbook-cron-report.lock /opt/c/report/run.sh " \
           ">> /opt/c/report/cron.log 2>&1\n" in entry


@pytest.mark.parametrize("schedule, ok", [
    ("*/5 * * * *", True), ("0 3 * * 1-5", True), ("@daily", True), ("0 0 1,15 jan-dec mon", False),
    ("0 0 * jan mon", True), ("61 * * * *", False), ("* * *", False), ("0 0 1-40 * *", False),
    ("*/0 * * * *", False), ("5-1 * * * *", False), ("0 0 * * 7", True),
])
def test_cron_schedule_validation(schedule, ok):
    assert (croncmd.bad_schedule(schedule) == "") is ok


def test_cron_names():
    assert croncmd.bad_name("a.b") and croncmd.bad_name("") and croncmd.bad_name("A") and not croncmd.bad_name("tick-1")


def test_kernel_support_and_commands():
    assert kernelcmd.supported({"ID": "centos", "VERSION_ID": "7"}) == ""
    assert kernelcmd.supported({"ID": "rhel", "VERSION_ID": "7.9"}) == ""
    why = kernelcmd.supported({"ID": "debian", "VERSION_ID": "12", "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)"})
    assert "RHEL/CentOS 7 only" in why and "Debian GNU/Linux 12" in why
    assert kernelcmd.supported({"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.3"})
    pk = ["kernel-devel-4.14.105-19.0012.tl2.x86_64", "kernel-4.14.105-19.0013.tl2.x86_64"]
    assert kernelcmd.kernel_version(pk) == "4.14.105-19.0013.tl2.x86_64"
    assert "baseurl=https://m/tlinux/\n" in kernelcmd.repo_text("https://m/tlinux/")
    assert kernelcmd.set_default_cmd("4.14").startswith("grubby --set-default /boot/vmlinuz-4.14 && grub2-mkconfig")
    assert kernelcmd.BOOT_CMD == "cat /proc/sys/kernel/random/boot_id && uname -r"
    assert kernelcmd.parse_boot("0b7f1b8e-1c3e-4b8e-9f0e-2a1d3c4b5e6f\n4.14.105\n") == (
        "0b7f1b8e-1c3e-4b8e-9f0e-2a1d3c4b5e6f", "4.14.105")
    assert kernelcmd.parse_boot("0b7f1b8e\n") == ("", "")
    assert kernelcmd.BOOT_ID.parse("abc\n", 0) == "abc" and kernelcmd.BOOT_ID.parse("", 1) == ""
    assert kernelcmd.sysctl_text().endswith("net.ipv4.vs.conn_reuse_mode = 0\nnet.ipv4.vs.expire_nodest_conn = 1\n")


def test_secrets_cannot_be_quoted_into_any_builder():
    with pytest.raises(TypeError):
        quote(Secret("x"))
    assert json.dumps(C.Container(name="a", image="b").run_argv("h"))  # plain data only


def test_reconfigure_records_what_it_applied_in_a_private_marker():
    from swarmbook import gitlabcmd as G

    marker = G.applied_marker("/srv/gitlab/config/gitlab.rb")
    assert marker == "/srv/gitlab/config/.swarmbook-applied"
    cmd = G.reconfigure_cmd(marker, "smtp_password = 'pw'")
    assert cmd.startswith("docker exec gitlab gitlab-ctl reconfigure && (umask 077;")
    assert G.applied_hash("smtp_password = 'pw'") in cmd and "pw'" not in cmd
    assert G.reconfigure_cmd() == "docker exec gitlab gitlab-ctl reconfigure"


def test_portainer_facts_from_the_engine_api():
    import json
    import urllib.parse

    from swarmbook import portainercmd as P

    nodes = [{"ID": "n1", "Description": {"Hostname": "h1"}, "Status": {"Addr": "10.0.0.1"},
              "Spec": {"Role": "manager", "Labels": {"portainer": "true"}}},
             {"ID": "n2", "Description": {"Hostname": "h2"}, "Status": {"Addr": "10.0.0.2"},
              "Spec": {"Role": "worker", "Labels": {}}}]
    got = P.NODES_FACT.parse(json.dumps(nodes), 0)
    assert got[0] == {"id": "n1", "hostname": "h1", "addr": "10.0.0.1", "role": "manager",
                      "labels": {"portainer": "true"}}
    assert P.has_label(got[0]) and not P.has_label(got[1]) and P.pick_node(got, "10.0.0.2")["id"] == "n2"
    assert P.NODES_FACT.parse('{"message": "not a swarm manager"}', 22) is None
    svc = {"Spec": {"Labels": {P.SPEC_LABEL: "abc"}, "Mode": {"Replicated": {"Replicas": 1}}}}
    assert P.SERVICE_FACT.parse(json.dumps(svc), 0) == {"spec": "abc", "replicas": 1}
    assert P.SERVICE_FACT.parse('{"message": "service portainer not found"}', 22) is None
    assert P.SERVICE_FACT.command.endswith("http://localhost/services/portainer")
    assert "com.docker.swarm.service.name=portainer" in urllib.parse.unquote(P.running_cmd())
    assert P.running('[{"Id": "c1"}]') and not P.running("[]") and not P.running("", 7)
