# guestgate: `make run` starts a working server; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test test-fast lint typecheck system-deps services bench requirements clean help

help:
	@echo "make run        - install, migrate ./var/guestgate.db and serve (API docs, portal, scheduler)"
	@echo "make test       - install everything the tests need and run the whole suite"
	@echo "make test-fast  - quick subset for the edit-run loop (SQLite, no browser/network tests)"
	@echo "make lint       - ruff and mypy strict"
	@echo "make bench      - run the benchmarks under bench/"

$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "installing python3-venv"; apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)

# Runtime install, redone when the pins or the project metadata change.
$(VENV)/.runtime: requirements/main.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/main.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(VENV)/.dev: requirements/dev.txt $(VENV)/.runtime
	$(BIN)/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/dev.txt
	@touch $@

run: $(VENV)/.runtime
	@mkdir -p var
	$(BIN)/guestgate serve --banner

system-deps:
	@scripts/system-deps.sh

services:
	@scripts/test-services.sh

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

test: system-deps services $(VENV)/.dev lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.dev
	$(BIN)/pytest -q -x -m "not slow and not browser and not netns" -k "not postgresql" $(PYTEST_ARGS)

# Every bench script prints a table; files starting with `_` are their shared helpers.
bench: system-deps $(VENV)/.dev services
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

# Re-pin after editing requirements/*.in (needs network to the package index).
requirements: | $(BIN)/python
	$(BIN)/pip install --quiet uv
	cd requirements && ../$(BIN)/uv pip compile main.in --python-version 3.11 --generate-hashes -o main.txt -q
	cd requirements && ../$(BIN)/uv pip compile dev.in --python-version 3.11 --generate-hashes -o dev.txt -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
