#!/bin/sh
# Serve "demo ok" plus the APP_NAME line of the mounted .env on port 9501.
# httpd runs as a child so that SIGTERM (docker stop, rolling updates) ends it at once:
# as PID 1 it would ignore SIGTERM and be killed only after the 10 s grace period. Exit 143
# (killed by TERM), not 0: swarm's restart policy "on-failure" must restart a task whose
# engine was restarted under it.
set -e
mkdir -p /srv/www
{
  echo "demo ok"
  grep '^APP_NAME=' /opt/www/.env 2>/dev/null || echo "APP_NAME=(no .env)"
} > /srv/www/index.html
httpd -f -p 9501 -h /srv/www &
pid=$!
trap 'kill "$pid" 2>/dev/null; exit 143' TERM INT
wait "$pid"
