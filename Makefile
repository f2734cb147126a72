# One set of verbs for people and CI. Each target installs and starts what it needs, idempotently.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export IMAGEBUILDER_DATA_DIR ?= $(CURDIR)/data
PYTHON_VERSIONS ?= 3.11
# Tests also build on a second Python to prove that version selection works.
TEST_PYTHON_VERSIONS ?= 3.11 3.13
VENV := .venv
BIN := $(VENV)/bin
SETUP := scripts/setup.sh

.PHONY: help setup run test lint fmt migrate bench lock lowest-deps openapi clean

help:
	@echo "make run      start the API on 127.0.0.1:$${IMAGEBUILDER_PORT:-8000} and a worker"
	@echo "make test     lint, then the whole test suite against real Docker, Redis, PostgreSQL"
	@echo "make lint     ruff format --check, ruff check, mypy --strict"
	@echo "make fmt      format and autofix"
	@echo "make migrate  apply database migrations"
	@echo "make bench    run the benchmarks under bench/"
	@echo "make lock     renew requirements.lock (the service image's pinned dependencies)"
	@echo "make openapi  regenerate docs/openapi.json and docs/api.md from the application"
	@echo "make lowest-deps  the unit tests on the lowest dependency versions pyproject.toml allows"

setup:
	@$(SETUP) python-deps docker redis
	@$(SETUP) base-images $(PYTHON_VERSIONS)

run: setup migrate
	@scripts/run.sh

migrate:
	@$(SETUP) python-deps
	@$(BIN)/alembic upgrade head

test:
	@$(SETUP) python-deps docker redis postgres browser compose registry
	@$(SETUP) base-images $(TEST_PYTHON_VERSIONS)
	@$(MAKE) --no-print-directory lint
	@scripts/lowest-deps.sh
	@scripts/test.sh

lint:
	@$(SETUP) python-deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy core adapters app worker client tests bench migrations

fmt:
	@$(SETUP) python-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup migrate
	@source scripts/local-env.sh && for script in bench/*.py; do echo "== $$script"; $(BIN)/python "$$script" || exit 1; done

lock:
	@$(SETUP) python-deps
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--quiet --custom-compile-command "make lock" -o requirements.lock

openapi:
	@$(SETUP) python-deps
	$(BIN)/python scripts/openapi_docs.py

lowest-deps:
	@$(SETUP) python-deps
	@scripts/lowest-deps.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
