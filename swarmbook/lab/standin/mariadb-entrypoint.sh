#!/bin/bash
# Real MariaDB (Debian's mariadb-server) with the mysql image's first-start contract:
# MYSQL_ROOT_PASSWORD sets root's password (root@localhost and root@'%'); data in /var/lib/mysql.
set -euo pipefail
# like the official images: any other command (mysql, psql, bash, ...) just runs
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ] && [ "$1" != mariadbd ]; then exec "$@"; fi
data=/var/lib/mysql
mkdir -p /run/mysqld "$data"
chown mysql:mysql /run/mysqld "$data"
if [ ! -d "$data/mysql" ]; then
    [ -n "${MYSQL_ROOT_PASSWORD:-}" ] || { echo "mysql: MYSQL_ROOT_PASSWORD is empty" >&2; exit 1; }
    mariadb-install-db --user=mysql --datadir="$data" --skip-test-db --auth-root-authentication-method=normal >/dev/null
    mariadbd --user=mysql --datadir="$data" --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 60); do mariadb-admin --socket=/run/mysqld/init.sock ping >/dev/null 2>&1 && break; sleep 0.5; done
    pw=$(printf '%s' "$MYSQL_ROOT_PASSWORD" | sed "s/\\\\/\\\\\\\\/g; s/'/''/g")
    mariadb --socket=/run/mysqld/init.sock -uroot <<SQL
ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';
CREATE USER 'root'@'%' IDENTIFIED BY '$pw';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
FLUSH PRIVILEGES;
SQL
    kill "$pid"; wait "$pid" || true
    echo "mysql: initialized $data"
fi
exec mariadbd --user=mysql --datadir="$data" --bind-address=0.0.0.0 --port=3306
