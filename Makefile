# Tokyo GeoTwin — the two README commands (`make run`, `make test`) and `make bench`.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test bench lint typecheck clean build-demo build-real setup

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

build-demo: $(STAMP)
	$(BIN)/geoservice build --mirror data/demo --if-stale

build-real: $(STAMP)
	$(BIN)/geoservice build --mirror ../shared/data

run: build-demo
	PORT=$(PORT) $(BIN)/geoservice serve

lint: $(STAMP)
	$(BIN)/ruff check geoservice tests tools bench
	$(BIN)/mypy geoservice

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf data/build tiles/*/ .pytest_cache
