# uvgate: `make run` serves with a built-in default configuration; `make test` runs everything.
# Both bootstrap what they need on a fresh Debian machine with Python 3.11 (venv, pip, apt).
# `make run` installs uvgate and its runtime dependencies only; `make test` adds the test and
# bench extras. Both install the exact versions of constraints.txt (`make constraints`
# regenerates it), as tests/js/package-lock.json pins the JavaScript side.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP_RUN := $(VENV)/.stamp-run
STAMP_DEPS := $(VENV)/.stamp-deps
CONSTRAINTS := constraints.txt
HOST ?= 127.0.0.1
PORT ?= 6001
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=

.PHONY: run test test-deps build lint typecheck conformance fuzz bench bench-quick constraints clean help

help:
	@echo "make run          serve on ws://$(HOST):$(PORT) with the default configuration"
	@echo "make test         lint, type-check and run the whole test suite (compiled, then pure Python)"
	@echo "make build        compile the hot path again after editing it (setup.py, Cython)"
	@echo "make conformance  Autobahn|Testsuite cases 1-10 (and 12-13) against the echo target"
	@echo "make fuzz         atheris on every parser, FUZZ_SECONDS=$(FUZZ_SECONDS) each (tests/fuzz/)"
	@echo "make bench        side-by-side benchmark (bench-quick: the short variant)"
	@echo "make constraints  re-resolve the newest allowed versions into constraints.txt"

# A venv needs Debian's python3-venv; install it when missing (we are root on CI).
$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 -m venv failed: installing python3-venv with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-dev build-essential && \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	@$(PIP) install -q --upgrade -c $(CONSTRAINTS) pip

# The compiled hot path (setup.py, Cython) needs a C compiler and Python's headers:
# install them with apt-get when missing (we are root on CI). If that cannot be done,
# the install still works and uvgate runs its pure-Python twin (one warning line).
COMPILER_OK = command -v cc >/dev/null 2>&1 && \
	$(PYTHON) -c "import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"
define build_tools
	@$(COMPILER_OK) || { [ -n "$$UVGATE_PURE_PYTHON" ] && [ "$$UVGATE_PURE_PYTHON" != 0 ]; } || { \
	  command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && { \
	  echo "no C compiler or Python.h: installing build-essential python3-dev with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential python3-dev >/dev/null; }; } || true
endef
# One line when the build fell back to pure Python (pip keeps setup.py's own line quiet).
define say_hot_path
	@$(PY) -c "from gateway.connection import HOT_PATH as h; h == 'compiled' or print('WARNING: uvgate: the compiled hot path was not built (no C compiler or Python headers?); running the pure-Python twin')"
endef
# Rebuilt when a hot-path source changes (the extensions are compiled from them).
HOT_SOURCES := setup.py $(wildcard gateway/*.pxd gateway/connection/*.pxd protocol/*.pxd protocol/*.c)

# What running needs: uvgate and its install_requires, nothing else.
$(STAMP_RUN): setup.cfg pyproject.toml $(CONSTRAINTS) $(HOT_SOURCES) | $(PY)
	$(call build_tools)
	$(PIP) install -q -c $(CONSTRAINTS) -e .
	$(call say_hot_path)
	@touch $@

# What the tests need on top (a superset: it satisfies `make run` too).
$(STAMP_DEPS): setup.cfg pyproject.toml $(CONSTRAINTS) $(HOT_SOURCES) | $(PY)
	$(call build_tools)
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[test,bench]'
	$(call say_hot_path)
	@touch $@ $(STAMP_RUN)

# After editing a hot-path module: compile it again in place (pure Python needs nothing).
build: $(STAMP_DEPS)
	$(PY) setup.py -q build_ext --inplace -j 2

run: $(STAMP_RUN)
	$(VENV)/bin/uvgate serve --host $(HOST) --port $(PORT) $(ARGS)

lint: $(STAMP_DEPS)
	$(VENV)/bin/ruff check gateway protocol bench tests examples
	$(VENV)/bin/ruff format --check gateway protocol bench tests examples

typecheck: $(STAMP_DEPS)
	$(VENV)/bin/mypy

test-deps: $(STAMP_DEPS)
	@bash scripts/test-deps.sh

# The whole suite twice: against the compiled hot path, then against its pure-Python twin
# (UVGATE_PURE_PYTHON=1, also in the servers the tests start). Coverage is measured on the
# twin's pass: it cannot see inside compiled modules. Without a compiler the first pass
# is skipped with one line (the twin is then what runs).
test: test-deps lint typecheck build
	@if $(PY) -c "from gateway.connection import HOT_PATH as h; raise SystemExit(h != 'compiled')"; then \
	  echo "== pass 1/2: compiled hot path"; \
	  UVGATE_EXPECT_COMPILED=1 $(PY) -m pytest -q -p no:cov -p no:randomly $(PYTEST_ARGS); \
	else echo "== pass 1/2 skipped: the compiled hot path is not built"; fi
	@echo "== pass 2/2: pure-Python twin (UVGATE_PURE_PYTHON=1), with coverage"
	UVGATE_PURE_PYTHON=1 $(PY) -m pytest -q --cov --cov-report=term $(PYTEST_ARGS)

conformance: $(STAMP_DEPS)
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[conformance]'
	$(PY) -m tests.conformance.run

# Coverage-guided fuzzing, bounded: each target runs FUZZ_SECONDS from its corpus in
# tests/fuzz/corpus/<target>/; findings land in tests/fuzz/crashes/<target>/. On the
# pure-Python twin: atheris sees the coverage of Python code only, and a compiled parser
# would leave it blind. `make test` replays the corpora and crashes against both forms.
fuzz: $(STAMP_DEPS)
	$(PIP) install -q -c $(CONSTRAINTS) -e '.[fuzz]'
	UVGATE_PURE_PYTHON=1 $(PY) -m tests.fuzz.run --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: $(STAMP_DEPS)
	$(PY) -m bench compare

bench-quick: $(STAMP_DEPS)
	$(PY) -m bench compare --quick

# Resolve setup.cfg's ranges afresh in a scratch venv and pin the result. Run it to take
# new releases (then `make clean test`), and commit constraints.txt with the change.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install -q --upgrade pip
	.venv-constraints/bin/pip install -q '.[test,bench,conformance]'
	{ echo "# Exact versions for make run / make test (pip install -c). Regenerate: make constraints"; \
	  .venv-constraints/bin/pip freeze --all --exclude uvgate; } > $(CONSTRAINTS)
	rm -rf .venv-constraints build uvgate.egg-info

clean:
	rm -rf $(VENV) .venv-constraints build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find gateway protocol -name '*.so' -delete
