"""Task flow for sshd.move-port and host keys: the host's key, checked on the old port, is
vouched for under the new port before the first login there (no accept-new window)."""

import re

import swarmbook.tasks.sshd as T
from swarmbook import facts as F
from swarmbook import sshdcmd
from swarmbook.session import Result

from .fakes import FakePool, make_run

move_port = T.move_port.body.__wrapped__

CONFIG = "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n"
FACTS = {F.file_state(sshdcmd.CONFIG, "cfg"): (f"root root 644\n{CONFIG}", 0),
         sshdcmd.ENV: ("socket=inactive\nselinux=\nfirewalld=inactive\nufw=\n", 0)}
OK = Result("", "", 0)


def test_move_port_vouches_for_the_new_port_before_logging_in_there():
    flags = dict(socket_activated=False, selinux=False, firewalld=False, ufw=False)
    both, new = sshdcmd.apply_cmd([22, 2222], **flags), sshdcmd.apply_cmd([2222], **flags)
    apply = f"({re.escape(both)}|{re.escape(new)})"
    pool = FakePool(FACTS, {rf"^{apply}$": OK, rf"^{re.escape(sshdcmd.LOGIN_CHECK_CMD)}$": OK})
    run, out = make_run(pool, "GITLAB=h1\n", task="sshd.move-port")
    run.each(run.settings.group("gitlab"), lambda h: move_port(h, port=2222))
    assert run.failed() == [], out.getvalue()
    assert pool.order == ["connect h1:22", "vouch h1:2222", "connect h1:2222", "vouch h1:2222", "connect h1:2222"]
    assert [d for c, d in pool.sent if re.fullmatch(apply, c)] == [
        sshdcmd.with_ports(CONFIG, [22, 2222]), sshdcmd.with_ports(CONFIG, [2222])]
