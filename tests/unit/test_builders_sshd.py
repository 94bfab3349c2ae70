"""sshd.move-port's commands, exactly; the socket drop-in written atomically, run for real under sh."""

import os
import stat
import subprocess

from swarmbook import sshdcmd

DROPIN = "/etc/systemd/system/ssh.socket.d/swarmbook-port.conf"
WRITE_22 = (f"mkdir -p \"$(dirname {DROPIN})\" && tmp=$(mktemp {DROPIN}.XXXXXX) && "
            f"printf '%s' '[Socket]\nListenStream=\nListenStream=22\n' > \"$tmp\" && chmod 0644 \"$tmp\" && "
            f"mv -f \"$tmp\" {DROPIN}")
RESTART_SOCKET = "systemctl daemon-reload && { systemctl reset-failed ssh.socket; systemctl restart ssh.socket; }"
RESTART_SERVICE = ("if systemctl cat sshd.service >/dev/null 2>&1; then u=sshd; else u=ssh; fi; "
                   "systemctl reset-failed \"$u\" 2>/dev/null; systemctl restart \"$u\"")


def test_socket_dropin_write_is_a_temp_file_renamed_into_place():
    assert sshdcmd.write_socket_dropin_cmd([22]) == WRITE_22


def test_socket_dropin_write_runs_under_sh_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "ssh.socket.d" / "swarm book.conf"  # a folder to make, a space to quote
    for ports in ([22, 2222], [2222]):
        subprocess.run(["sh", "-c", sshdcmd.write_socket_dropin_cmd(ports, str(target))], check=True)
        assert target.read_text() == sshdcmd.socket_dropin(ports)
        assert stat.S_IMODE(os.stat(target).st_mode) == 0o644
        assert os.listdir(target.parent) == ["swarm book.conf"]


def test_apply_with_both_ports_on_socket_activated_sshd_behind_firewalld():
    cmd = sshdcmd.apply_cmd([22, 2222], socket_activated=True, selinux=False, firewalld=True, ufw=False)
    assert cmd == " && ".join([sshdcmd.install_config_cmd(), sshdcmd.write_socket_dropin_cmd([22, 2222]),
                               "firewall-cmd --permanent --add-port=2222/tcp && firewall-cmd --reload",
                               RESTART_SOCKET])


def test_apply_on_a_plain_sshd_service_writes_no_dropin():
    cmd = sshdcmd.apply_cmd([2222], socket_activated=False, selinux=True, firewalld=False, ufw=True)
    assert cmd == " && ".join([sshdcmd.install_config_cmd(),
                               "semanage port -a -t ssh_port_t -p tcp 2222 2>/dev/null || "
                               "semanage port -m -t ssh_port_t -p tcp 2222",
                               "ufw allow 2222/tcp", RESTART_SERVICE])
    assert "socket.d" not in cmd


def test_rollback_restores_config_and_dropin_and_restarts_whatever_failed_before():
    restore = ("if [ -f /etc/ssh/sshd_config.swarmbook.bak ]; then "
               "mv -f /etc/ssh/sshd_config.swarmbook.bak /etc/ssh/sshd_config; fi")
    assert sshdcmd.rollback_cmd(22, socket_activated=True) == f"{restore}; {WRITE_22}; {RESTART_SOCKET}"
    assert sshdcmd.rollback_cmd(22, socket_activated=False) == f"{restore}; {RESTART_SERVICE}"


def test_config_path_is_quoted():
    cmd = sshdcmd.install_config_cmd("/etc/ssh/x; reboot")
    assert "'/etc/ssh/x; reboot'" in cmd and " x; reboot" not in cmd
    assert sshdcmd.write_socket_dropin_cmd([22], "/tmp/$(reboot)").count("'/tmp/$(reboot)'") == 3
