"""The commands and facts cron.*, gitlab.up, kong.*, portainer.up, runner.install, mysql.up and
ops send, exactly as their task bodies used to write them; user values through a real sh
against recorded programs; the dashboard's credentials through a real curl."""

import base64
import http.server
import shutil
import subprocess
import threading

import pytest

from swarmbook import croncmd, gitlabcmd, kongcmd, mysqlcmd, oscmd, portainercmd, runnercmd
from swarmbook.config import parse

from .recorder import Recorder


@pytest.fixture
def rec(tmp_path):
    return Recorder(tmp_path)


def test_cron_service_fact_and_remove_exact(rec):
    assert croncmd.SERVICE_FACT.command == "systemctl is-active cron 2>/dev/null || systemctl is-active crond"
    assert croncmd.SERVICE_FACT.parse("inactive\nactive\n", 3) is True
    assert croncmd.SERVICE_FACT.parse("inactive\ninactive\n", 3) is False
    assert croncmd.remove_cmd("/etc/cron.d/swarmbook-report") == "rm -f /etc/cron.d/swarmbook-report"
    assert rec.run(croncmd.remove_cmd(rec.evil)) == [["rm", "-f", rec.evil]] and rec.pwned() == []


def test_gitlab_folders_exact_and_quoted(rec):
    assert gitlabcmd.dirs_fact("/srv/gitlab").command == \
        "test -d /srv/gitlab/config -a -d /srv/gitlab/logs -a -d /srv/gitlab/data"
    assert gitlabcmd.dirs_fact("/srv/gitlab").parse("", 1) is False
    assert gitlabcmd.make_dirs_cmd("/srv/gitlab") == "mkdir -p /srv/gitlab/config /srv/gitlab/logs /srv/gitlab/data"
    home = rec.evil
    assert rec.run(gitlabcmd.make_dirs_cmd(home)) == [["mkdir", "-p", f"{home}/config", f"{home}/logs", f"{home}/data"]]
    assert rec.pwned() == []


# --- kong --------------------------------------------------------------------------------------

def test_kong_admin_and_dashboard_probes_exact():
    svc = kongcmd.admin_get_fact("svc", "http://127.0.0.1:8001/services/demo")
    assert svc.command == "curl -sS -m 10 -w '\\n%{http_code}' http://127.0.0.1:8001/services/demo"
    assert svc.parse('{"host": "demo_demo"}\n200', 0) == (200, {"host": "demo_demo"})
    assert svc.parse("", 7) == (0, None)
    ok = kongcmd.admin_ok_fact("http://127.0.0.1:8001/")
    assert ok.name == "admin_ok" and ok.command == "curl -fsS -o /dev/null -m 5 http://127.0.0.1:8001/"
    code = kongcmd.dashboard_code_fact("http://127.0.0.1:8080/")
    assert code.name == "dash_code" and code.parse("401", 0) == "401"
    assert code.command == "curl -sS -o /dev/null -m 5 -w '%{http_code}' http://127.0.0.1:8080/"
    assert kongcmd.auth_status_cmd("http://127.0.0.1:8080/") == \
        "curl -sS -o /dev/null -m 5 -w '%{http_code}' -K - http://127.0.0.1:8080/"


def test_curl_user_config_escapes_what_curl_unescapes():
    assert kongcmd.curl_user_config("admin", "dash-1") == 'user = "admin:dash-1"\n'
    assert kongcmd.curl_user_config("admin", 'a"b\\c') == 'user = "admin:a\\"b\\\\c"\n'


class _BasicAuth(http.server.BaseHTTPRequestHandler):
    expected = ""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200 if self.headers.get("Authorization") == self.expected else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
@pytest.mark.parametrize("password", ["dash-1", 'with"quote', "back\\slash", "tab\\tnot-a-tab", "s p a c e"])
def test_dashboard_credentials_reach_the_server_unchanged_through_curl(password):
    server = http.server.HTTPServer(("127.0.0.1", 0), _BasicAuth)
    _BasicAuth.expected = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/"

        def status(config: str) -> str:
            return subprocess.run(["sh", "-c", kongcmd.auth_status_cmd(url)], input=config, text=True,
                                  capture_output=True, timeout=30).stdout

        assert status(kongcmd.curl_user_config("admin", password)) == "200"
        if "\\" in password or '"' in password:  # what the task wrote before: curl altered the password
            assert status(f'user = "admin:{password}"\n') != "200"
    finally:
        server.shutdown()
        server.server_close()


# --- portainer ---------------------------------------------------------------------------------

ARGV = portainercmd.create_argv(image="portainer/portainer-ce:latest", port=9000, publish_mode="ingress")


def test_portainer_service_and_label_commands_exact():
    create = ("docker service create --detach=false --quiet --label swarmbook.spec=s1 --name portainer --replicas 1 "
              "--publish published=9000,target=9000 --constraint 'node.role == manager' "
              "--constraint 'node.labels.portainer == true' --mount type=volume,src=portainer_data,dst=/data "
              "--mount type=bind,src=/var/run/docker.sock,dst=/var/run/docker.sock portainer/portainer-ce:latest")
    assert portainercmd.deploy_cmd(ARGV, "s1", replace=False) == create
    assert portainercmd.deploy_cmd(ARGV, "s1", replace=True) == f"docker service rm portainer && {create}"
    assert portainercmd.label_add_cmd("n1") == "docker node update --label-add portainer=true n1"
    assert portainercmd.label_rm_cmd("n2") == "docker node update --label-rm portainer n2"
    assert portainercmd.http_ok_cmd(9000) == "curl -fsS -o /dev/null -m 3 http://127.0.0.1:9000/"
    running, http = portainercmd.ready_facts(9000)
    assert (running.name, running.command) == ("portainer_running", portainercmd.running_cmd())
    assert (http.name, http.command) == ("portainer_http", portainercmd.http_ok_cmd(9000))
    assert running.parse("[{}]", 0) is True and http.parse("", 7) is False


def test_portainer_node_ids_and_image_are_quoted(rec):
    assert rec.run(portainercmd.label_add_cmd(rec.evil)) == [
        ["docker", "node", "update", "--label-add", "portainer=true", rec.evil]]
    assert rec.run(portainercmd.label_rm_cmd(rec.evil))[0][-1] == rec.evil
    argv = portainercmd.create_argv(image=rec.evil, port=9000, publish_mode="host")
    calls = rec.run(portainercmd.deploy_cmd(argv, "s1", replace=True))
    assert calls[0] == ["docker", "service", "rm", "portainer"] and calls[1][-1] == rec.evil
    assert rec.pwned() == []


# --- runner, mysql, os ---------------------------------------------------------------------------

def test_runner_probes_and_checks_exact():
    assert runnercmd.KEYRING_FACT.command == \
        "test -s /usr/share/keyrings/runner_gitlab-runner-archive-keyring.gpg"
    assert runnercmd.KEYRING_FACT.parse("", 0) is True and runnercmd.KEYRING_FACT.parse("", 1) is False
    assert runnercmd.GIT_VERSION_CMD == runnercmd.GIT_VERSION.command == "git version"
    assert runnercmd.VERSION_CMD == "gitlab-runner --version | head -1"


def test_mysql_query_runs_as_root_with_the_password_on_stdin(rec):
    settings = parse("MANAGERS=h1\n", environ={})
    c = mysqlcmd.container(settings)
    assert (c.name, c.env_file, c.network) == ("mysql", "/etc/swarmbook/mysql.env", settings["NETWORK_NAME"])
    assert mysqlcmd.VERSION_QUERY == ("docker exec -i mysql sh -c "
                                      "'MYSQL_PWD=\"$(cat)\" exec mysql -uroot -h127.0.0.1 -N -B -e \"$0\"' "
                                      "'SELECT VERSION()'")
    (call,) = rec.run(mysqlcmd.query_cmd(rec.evil), stdin="root-pw\n")
    assert call[:6] == ["docker", "exec", "-i", "mysql", "sh", "-c"] and call[-1] == rec.evil
    assert "root-pw" not in " ".join(call) and rec.pwned() == []


def test_os_start_and_group_commands_exact_and_quoted(rec):
    assert oscmd.start_cmd("docker") == "systemctl daemon-reload && systemctl enable --now docker"
    assert oscmd.add_to_group_cmd("ops", "docker") == "usermod -aG docker ops"
    assert rec.run(oscmd.start_cmd(rec.evil))[-1] == ["systemctl", "enable", "--now", rec.evil]
    assert rec.run(oscmd.add_to_group_cmd(rec.evil, "docker")) == [["usermod", "-aG", "docker", rec.evil]]
    assert rec.pwned() == []
