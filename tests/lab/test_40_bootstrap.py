"""bootstrap-all against the lab: the whole runbook converges, a second run changes nothing,
and no secret (registry password, join tokens) appears in output or in the hosts' logs."""

import subprocess
import threading
import time

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def _secret_values(lab) -> list[str]:
    """Every secret of the lab's hosts.env (random per lab, so each is its own canary)."""
    from swarmbook import config

    s = config.load(str(lab.hosts_env))
    values = [x.reveal() for x in s.secrets()]
    for v in list(values):  # KONG_DASHBOARD_USERS holds 'user=password' pairs: the passwords too
        values += [pair.split("=", 1)[1] for pair in v.split() if "=" in pair]
    return [v for v in values if len(v) >= 8]


class ProcessSampler:
    """`ps -eo args` on the operator machine and on every lab host, over and over while a run
    goes: a secret in argv is visible to every local user for as long as the process lives."""

    def __init__(self, lab):
        self.lab, self.seen, self.samples = lab, [], 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.is_set():
            self.seen.append(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout)
            for h in self.lab.hosts:
                p = ssh(self.lab, h, "ps -eo args", check=False)
                self.seen.append(p.stdout)
            self.samples += 1
            time.sleep(0.2)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def test_bootstrap_all_converges_then_reports_zero_changed(lab):
    with ProcessSampler(lab) as ps:
        first = sb(lab, "bootstrap-all", timeout=1800)
    assert first.rc == 0, (first.failed, first.stderr[-2000:])
    canaries = _secret_values(lab)
    assert len(canaries) >= 4 and ps.samples >= 3, (len(canaries), ps.samples)
    for v in canaries:
        assert not any(v in sample for sample in ps.seen), "a secret was in a process list during bootstrap-all"
    second = sb(lab, "bootstrap-all", timeout=1800)
    assert second.rc == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.changed == 0, [e for e in second.steps("changed")]
    hosts = second.recap()
    assert set(hosts) == {h.addr for h in lab.hosts}
    assert all(row["failed"] == 0 for row in hosts.values())

    # secrets: every hosts.env secret and both join tokens never show, here or on the hosts
    secrets = _secret_values(lab)
    for role in ("worker", "manager"):
        secrets.append(ssh(lab, lab.hosts[0], f"docker swarm join-token -q {role}").stdout.strip())
    text = first.stdout + first.stderr + second.stdout + second.stderr
    for s in secrets:
        assert s and s not in text
    for h in lab.hosts:
        logs = ssh(lab, h, "journalctl --no-pager -q 2>/dev/null; cat /var/log/*.log 2>/dev/null; true").stdout
        for s in secrets:
            assert s not in logs, f"a secret is in {h.hostname}'s logs"


def test_check_mode_on_a_converged_lab_would_change_nothing(lab):
    out = sb(lab, "bootstrap-all", "--check")
    assert out.rc == 0 and out.changed == 0, [e for e in out.steps("changed")]
