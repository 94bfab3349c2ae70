#!/bin/sh
# STAND-IN of Portainer (swarmbook lab): keeps its state in /data (like portainer.db) and
# answers HTTP on 9000 with /api/status. It does not manage Docker.
set -e
mkdir -p /data /www/api
[ -f /data/portainer.db ] || echo "instance $(date +%s)-$$" >/data/portainer.db
printf '{"Version":"0.0.0-swarmbook-standin","InstanceID":"%s"}\n' "$(cat /data/portainer.db)" >/www/api/status
echo "swarmbook lab Portainer stand-in" >/www/index.html
exec httpd -f -p 9000 -h /www
