# `make test` and `make demo` set everything up themselves (a fresh clone needs python3 and npm).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint unit demo bench bench-gas clean

setup: $(STAMP)

$(STAMP): pyproject.toml package-lock.json
	npm ci --no-audit --no-fund
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: lint unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest

demo: setup
	$(BIN)/enclava demo

bench: setup
	$(BIN)/python bench/verify.py

bench-gas: setup
	$(BIN)/python bench/gas.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
