#!/usr/bin/env bash
# The whole suite against the services `make test` started: Docker, Redis, PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${IMAGEBUILDER_DATA_DIR:=$PWD/data}"
source scripts/local-env.sh
: "${IMAGEBUILDER_TEST_POSTGRES_URL:=postgresql+psycopg://postgres@127.0.0.1:${PGPORT:-55432}/imagebuilder_test}"
: "${IMAGEBUILDER_TEST_REDIS_URL:=redis://127.0.0.1:${REDIS_PORT:-6379}/9}"
export IMAGEBUILDER_TEST_POSTGRES_URL IMAGEBUILDER_TEST_REDIS_URL
exec .venv/bin/pytest "$@"
