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


# --- backup and restore ------------------------------------------------------------------------

SYSTEM_SCHEMAS = ("mysql", "sys", "information_schema", "performance_schema")
DUMP_DONE = b"-- Dump completed"  # mysqldump's last line when it finished (MySQL and MariaDB)

# Inside the container: the password from the first line of stdin (never argv), the user
# databases listed, then one consistent snapshot of all of them (--single-transaction: InnoDB
# tables read at one point in time without locking writers), each dropped and re-created on restore.
_DUMP = ('IFS= read -r MYSQL_PWD; export MYSQL_PWD; '
         'dbs=$(mysql -uroot -h127.0.0.1 -N -B -e "SELECT schema_name FROM information_schema.schemata '
         "WHERE schema_name NOT IN (" + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + ')") || exit 1; '
         'if [ -z "$dbs" ]; then echo "-- no user databases"; echo "-- Dump completed"; exit 0; fi; '
         'exec mysqldump -uroot -h127.0.0.1 --single-transaction --routines --events --triggers --hex-blob '
         '--add-drop-database --databases $dbs')


def dump_cmd() -> str:
    """Every user database as SQL, gzip'ed and base64'ed on the host (one line of stdout). The
    caller checks the dump ends with DUMP_DONE: a failed mysqldump cannot pass for a backup."""
    return f"{exec_cmd(NAME, ['sh', '-c', _DUMP], stdin=True)} | gzip -c | base64 -w0"


def restore_cmd() -> str:
    """Feed a dump to mysql as root: stdin is the password's line, then the SQL."""
    return exec_cmd(NAME, ["sh", "-c", 'IFS= read -r MYSQL_PWD; export MYSQL_PWD; exec mysql -uroot -h127.0.0.1'],
                    stdin=True)


def dump_databases(sql: bytes) -> list[str]:
    """The databases a dump creates (``CREATE DATABASE ... `name```), in order."""
    import re
    return [m.decode() for m in re.findall(rb"^CREATE DATABASE /\*!32312 IF NOT EXISTS\*/ `([^`]+)`", sql, re.M)]


def dump_problem(sql: bytes) -> str:
    """Why ``sql`` is not a whole dump ('' when it is)."""
    if DUMP_DONE not in sql[-400:]:
        return "it does not end with mysqldump's '-- Dump completed' line (cut short or not a dump)"
    return ""


def databases_cmd() -> str:
    """The user databases, one per line (what a restore is checked against)."""
    return query_cmd("SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ("
                     + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + ")")
