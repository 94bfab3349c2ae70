#!/bin/sh
# Serve "demo ok" plus the APP_NAME line of the mounted .env on port 9501.
set -e
mkdir -p /srv/www
{
  echo "demo ok"
  grep '^APP_NAME=' /opt/www/.env 2>/dev/null || echo "APP_NAME=(no .env)"
} > /srv/www/index.html
exec httpd -f -p 9501 -h /srv/www
