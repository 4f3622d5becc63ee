# takeaction — every task a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help install run broker test unit lint typecheck train eval bench docs fmt clean distclean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create the virtualenv and install the project with its dev tools

run: $(STAMP) ## Run the whole pipeline embedded on this machine, with a demo replay
	$(BIN)/python -m services.common.stack run

broker: $(STAMP) ## Run only the embedded Kafka-protocol broker (Tansu) on port 9092
	$(BIN)/python -m services.common.broker --port 9092

lint: $(STAMP) ## ruff (lint + format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy services tests

unit: $(STAMP) ## Only the fast tests (no broker, no database)
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test: $(STAMP) lint typecheck ## Lint, type-check and run the whole test suite (what CI runs)
	$(BIN)/pytest $(PYTEST_ARGS)

train: $(STAMP) ## Train the classifier heads on ../shared/data (TRIAGE_DATA_DIR); writes services/triage/model
	$(BIN)/python -m services.triage.classifier.train

eval: $(STAMP) ## Measure the committed classifier artefacts on the validation sets
	$(BIN)/python -m services.triage.classifier.evaluate

bench: $(STAMP) ## Benchmarks, each against a baseline measured in the same run (prints RATIO lines)
	$(BIN)/python -m tests.bench.bench_ingest
	$(BIN)/python -m tests.bench.bench_classifier

DOCS := README.md services/ingest/README.md services/triage/README.md services/publish/README.md

docs: $(STAMP) ## Regenerate the configuration tables in the READMEs from the settings classes
	$(BIN)/python -m services.common.configdoc --write $(DOCS)

fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove runtime state (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## Also remove the virtualenv
	rm -rf $(VENV)
