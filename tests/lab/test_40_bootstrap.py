"""bootstrap-all against the lab: the whole runbook converges, a second run changes nothing,
and no secret (registry password, join tokens) appears in output or in the hosts' logs."""

import pytest

from .sb import sb, ssh

pytestmark = pytest.mark.lab


def test_bootstrap_all_converges_then_reports_zero_changed(lab):
    first = sb(lab, "bootstrap-all", timeout=1800)
    assert first.rc == 0, (first.failed, first.stderr[-2000:])
    second = sb(lab, "bootstrap-all", timeout=1800)
    assert second.rc == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.changed == 0, [e for e in second.steps("changed")]
    hosts = second.recap()
    assert set(hosts) == {h.addr for h in lab.hosts}
    assert all(row["failed"] == 0 for row in hosts.values())

    # secrets: the registry password and both join tokens never show, here or on the hosts
    secrets = [(lab.state_dir / "registry.password").read_text().strip()]
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
