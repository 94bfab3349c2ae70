"""Pure builders for MySQL on the shared network (the runbook's
`docker run --name mysql --network default-network`): the container and a query as root."""

from __future__ import annotations

from .containercmd import Container, exec_cmd

NAME = "mysql"
ENV_FILE = "/etc/swarmbook/mysql.env"


def container(s) -> Container:
    """Like the runbook's command, but restart always instead of --rm (it comes back after a reboot)."""
    return Container(name=NAME, image=s["MYSQL_IMAGE"], network=s["NETWORK_NAME"], env_file=ENV_FILE,
                     volumes=(f"{s['MYSQL_DATA']}:/var/lib/mysql",), ports=(f"{s['MYSQL_PORT']}:3306",))


def query_cmd(sql: str) -> str:
    """Run ``sql`` as root inside the container; the password comes on stdin (MYSQL_PWD), not argv."""
    return exec_cmd(NAME, ["sh", "-c", 'MYSQL_PWD="$(cat)" exec mysql -uroot -h127.0.0.1 -N -B -e "$0"', sql],
                    stdin=True)


# What mysql.up asks to prove MySQL answers as root.
VERSION_QUERY = query_cmd("SELECT VERSION()")
