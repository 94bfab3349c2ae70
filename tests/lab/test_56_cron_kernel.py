"""cron.install, kernel.tlinux and kernel.ipvs-tune on the real lab hosts.

cron: the real cron daemon of h1 runs the installed entry; the script pulls busybox through the
lab mirror and runs the command in a container with the .env mounted. NOT proved: pulls of a
private app image at cron time (registry.login covers root's login; the stack tests prove
pulls), nor long-running jobs overlapping (flock is in the entry).
kernel: the lab hosts are Debian and share the outer kernel (no IPVS): tlinux must refuse and
change nothing; ipvs-tune must skip with the reason. The RHEL flow is unit-tested.
"""

import time

import pytest

from .sb import sb
from .test_50_gitlab_runner import prepared, run

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(lab):
    return prepared(lab)


def test_cron_entry_runs_command_in_container_and_logs(cluster, tmp_path):
    lab = cluster
    m = lab.hosts[0]
    env = tmp_path / "app.env"
    env.write_text("APP_NAME=cron-demo\nDB_HOST=mysql\n")
    run(lab, m, "rm -rf /opt/swarmbook/cron/tick /etc/cron.d/swarmbook-tick")
    args = ("cron.install", "tick", "--schedule", "* * * * *", "--app-env", str(env), "--image", "busybox:latest",
            "--command", "sh -c 'echo tick from $(hostname); cat /opt/www/.env'")
    out = sb(lab, *args)
    assert out.rc == 0 and out.changed == 3, out.stdout + out.stderr
    entry = run(lab, m, "cat /etc/cron.d/swarmbook-tick").stdout
    assert "* * * * * root flock -n /run/lock/swarmbook-cron-tick.lock /opt/swarmbook/cron/tick/run.sh " \
           ">> /opt/swarmbook/cron/tick/cron.log 2>&1" in entry
    assert run(lab, m, "stat -c %a /opt/swarmbook/cron/tick/.env").stdout.strip() == "600"
    again = sb(lab, *args)
    assert again.rc == 0 and again.changed == 0, again.stdout
    deadline = time.monotonic() + 130  # the real cron daemon fires at the next minute
    log = ""
    while time.monotonic() < deadline and "tick done" not in log:
        time.sleep(5)
        log = run(lab, m, "cat /opt/swarmbook/cron/tick/cron.log 2>/dev/null || true").stdout
    assert "tick start" in log and "tick done" in log, log
    assert "tick from " in log and "APP_NAME=cron-demo" in log  # ran in a container, .env mounted
    assert sb(lab, "cron.remove", "tick").changed == 2
    assert run(lab, m, "test -e /etc/cron.d/swarmbook-tick", check=False).returncode != 0


def test_cron_bad_schedule_refused_before_any_host(cluster, tmp_path):
    env = tmp_path / "app.env"
    env.write_text("A=1\n")
    out = sb(cluster, "cron.install", "x", "--schedule", "61 * * * *", "--command", "true", "--app-env", str(env),
             json_lines=False)
    assert out.rc == 2 and "bad minute field" in out.stderr and "Traceback" not in out.stderr


def test_tlinux_refuses_on_debian_and_changes_nothing(cluster):
    lab = cluster
    before = [run(lab, h, "ls /etc/yum.repos.d 2>/dev/null; md5sum /etc/default/grub 2>/dev/null; true").stdout
              for h in lab.hosts]
    out = sb(lab, "kernel.tlinux")
    assert out.rc == 1 and out.changed == 0
    assert {e["host"] for e in out.failed} == {h.addr for h in lab.hosts}
    assert all("RHEL/CentOS 7 only" in e["reason"] and "nothing changed" in e["reason"] for e in out.failed)
    after = [run(lab, h, "ls /etc/yum.repos.d 2>/dev/null; md5sum /etc/default/grub 2>/dev/null; true").stdout
             for h in lab.hosts]
    assert after == before


def test_ipvs_tune_skips_without_ipvs(cluster):
    lab = cluster
    out = sb(lab, "kernel.ipvs-tune")
    assert out.rc == 0 and out.changed == 0
    skipped = out.steps("skipped")
    assert len(skipped) == len(lab.hosts) and all("IPVS is not loaded" in e["reason"] for e in skipped)
    assert run(lab, lab.hosts[0], "test -e /etc/sysctl.d/90-swarmbook-ipvs.conf", check=False).returncode != 0
