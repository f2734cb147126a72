#!/usr/bin/env bash
# Serve the API and run a worker (with the periodic sweeper) until Ctrl-C, which stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${IMAGEBUILDER_DATA_DIR:=$PWD/data}"
: "${IMAGEBUILDER_PORT:=8000}"
: "${IMAGEBUILDER_HOST:=127.0.0.1}"
export IMAGEBUILDER_DATA_DIR IMAGEBUILDER_PORT IMAGEBUILDER_HOST
source scripts/local-env.sh

mkdir -p "$IMAGEBUILDER_DATA_DIR/logs"
# A first admin token, made once and kept (mode 0600) in the data folder, unless one is given.
if [ -z "${IMAGEBUILDER_BOOTSTRAP_TOKEN:-}" ]; then
    token_file="$IMAGEBUILDER_DATA_DIR/admin-token"
    if [ ! -s "$token_file" ]; then
        (umask 077 && .venv/bin/python -c 'import secrets; print("ib_admin_" + secrets.token_urlsafe(32))' >"$token_file")
    fi
    IMAGEBUILDER_BOOTSTRAP_TOKEN=$(cat "$token_file")
    echo "imagebuilder: admin token in $token_file (export IMAGEBUILDER_TOKEN=\$(cat $token_file))"
fi
export IMAGEBUILDER_BOOTSTRAP_TOKEN
pids=()
stop() {
    trap - INT TERM EXIT
    echo "stopping: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

.venv/bin/celery -A worker.celery_app worker --beat --loglevel INFO --concurrency 2 -O fair \
    --schedule "$IMAGEBUILDER_DATA_DIR/celerybeat-schedule" &
pids+=($!)
# Webhook deliveries on their own queue and threads: a slow receiver never holds a build slot.
.venv/bin/celery -A worker.celery_app worker -Q webhooks -P threads --concurrency 8 \
    -n "webhooks@%h" --loglevel INFO &
pids+=($!)
# IMAGEBUILDER_API_WORKERS processes (default 1), sized with the database pool (core/settings.py).
.venv/bin/python -m app.serve --no-access-log &
pids+=($!)
echo "imagebuilder: API on http://$IMAGEBUILDER_HOST:$IMAGEBUILDER_PORT, data in $IMAGEBUILDER_DATA_DIR (Ctrl-C stops)"
wait -n "${pids[@]}"
