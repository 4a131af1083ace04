# uvgate: `make run` serves with a built-in default configuration; `make test` runs everything.
# Both bootstrap what they need on a fresh Debian machine with Python 3.11 (venv, pip, apt).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP_DEPS := $(VENV)/.stamp-deps
HOST ?= 127.0.0.1
PORT ?= 6001
PYTEST_ARGS ?=

.PHONY: run test test-deps lint typecheck conformance bench bench-quick clean help

help:
	@echo "make run          serve on ws://$(HOST):$(PORT) with the default configuration"
	@echo "make test         lint, type-check and run the whole test suite"
	@echo "make conformance  Autobahn|Testsuite cases 1-10 (and 12-13) against the echo target"
	@echo "make bench        side-by-side benchmark (bench-quick: the short variant)"

# A venv needs Debian's python3-venv; install it when missing (we are root on CI).
$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing python3-venv with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev build-essential && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	@$(PIP) install -q --upgrade pip

$(STAMP_DEPS): setup.cfg pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test,bench]'
	@touch $@

run: $(STAMP_DEPS)
	$(VENV)/bin/uvgate serve --host $(HOST) --port $(PORT) $(ARGS)

lint: $(STAMP_DEPS)
	$(VENV)/bin/ruff check gateway protocol bench tests examples
	$(VENV)/bin/ruff format --check gateway protocol bench tests examples

typecheck: $(STAMP_DEPS)
	$(VENV)/bin/mypy

test-deps: $(STAMP_DEPS)
	@bash scripts/test-deps.sh

test: test-deps lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

conformance: $(STAMP_DEPS)
	$(PIP) install -q -e '.[conformance]'
	$(PY) -m tests.conformance.run

bench: $(STAMP_DEPS)
	$(PY) -m bench compare

bench-quick: $(STAMP_DEPS)
	$(PY) -m bench compare --quick

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
