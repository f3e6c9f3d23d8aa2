# The two commands a newcomer needs: `make demo` and `make test`.
# Every target installs what it needs first (`make install`, a no-op when nothing changed).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))

.PHONY: install demo up test test-unit test-integration test-e2e test-reliability lint schemas bench bench-quick clean

install: $(STAMP)

# Bytecode is compiled here, once: where PYTHONDONTWRITEBYTECODE is set (this project's
# machines and CI set it) Python never caches it, and every process start compiled the
# libraries again (~4.5 s instead of ~3 s to import a service; the suite starts services
# in subprocesses hundreds of times).
$(STAMP): pyproject.toml uv.lock Makefile
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@test -x $(BIN)/uv || $(BIN)/python -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv sync --frozen --inexact --quiet --compile-bytecode
	@$(BIN)/python -m compileall -q ketnap services shared benchmarks deploy >/dev/null
	@touch $(STAMP)

demo: install
	$(BIN)/ketnap demo

up: install
	$(BIN)/ketnap up

test: install
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q -m unit

test-integration: install
	$(BIN)/pytest -q -m integration

test-e2e: install
	$(BIN)/pytest -q -m e2e

test-reliability: install
	KETNAP_RELIABILITY_FULL=1 $(BIN)/pytest -q tests/reliability

lint: install lint-deploy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy ketnap shared services

# Offline checks of docker-compose.yml and deploy/ (deploy/check.py); promtool and
# shellcheck come from Debian, the other checkers from the dev dependency group.
.PHONY: lint-deploy
lint-deploy: install
	@command -v promtool >/dev/null && command -v shellcheck >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus shellcheck >/dev/null)
	$(BIN)/python -m deploy.check

schemas: install
	$(BIN)/python -m shared.schemas_export docs/schemas

bench: install
	$(BIN)/python -m benchmarks

bench-quick: install
	$(BIN)/python -m benchmarks --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
