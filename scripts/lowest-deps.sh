#!/usr/bin/env bash
# The declared floors work: install the lowest version every direct dependency allows (their own
# dependencies at the newest they allow, as a user's fresh install would get) into a throwaway
# virtualenv, and run the unit tests there.
#
#   scripts/lowest-deps.sh [PYTEST ARGS...]      (default: tests/unit -q)
#
# Deprecation warnings are shown, not fatal, here: an old floor next to the newest transitive
# release (anyio, click) warns about things the floor cannot change; the main run keeps them as
# errors. uv's cache makes a second run take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-$(command -v .venv/bin/uv || command -v uv || true)}
[[ -n $UV ]] || { echo "lowest-deps: uv is missing (pip install uv)" >&2; exit 1; }
PYTHON=${LOWEST_DEPS_PYTHON:-3.11}
venv=$(mktemp -d "${TMPDIR:-/tmp}/imagebuilder-lowest.XXXXXX")
trap 'rm -rf "$venv"' EXIT
"$UV" venv --quiet --python "$PYTHON" "$venv"
VIRTUAL_ENV=$venv "$UV" pip install --quiet --resolution lowest-direct -e '.[test]' -e ./client
VIRTUAL_ENV=$venv "$UV" pip list --quiet 2>/dev/null | grep -iE '^(fastapi|starlette|pydantic|pydantic-settings|python-multipart|sqlalchemy|typer|rich|httpx|packaging) ' || true
# docs/openapi.json is generated with the locked FastAPI; an older one words the document
# differently, so the comparison with the committed copy is left to the main run.
[[ $# -gt 0 ]] || set -- tests/unit -q \
    --deselect tests/unit/test_openapi.py::TestCommittedCopy::test_docs_hold_the_document_the_app_serves
exec "$venv/bin/python" -m pytest -p no:cacheprovider -W default::DeprecationWarning "$@"
