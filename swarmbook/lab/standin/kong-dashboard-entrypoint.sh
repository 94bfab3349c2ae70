#!/bin/sh
# as pgbi/kong-dashboard's docker/entrypoint.sh (WORKDIR /app)

./bin/kong-dashboard.js $@
