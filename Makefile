# One place for set-up, the main job and the tests. Every target installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# Quiet, offline-friendly defaults (see shared/facts.md): no telemetry, and enough time for
# Prefect's ephemeral API server to start on a 2-core machine.
export DO_NOT_TRACK ?= true
export MLFLOW_ENABLE_TELEMETRY ?= false
export GX_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export MODELOPS_HOME ?= $(CURDIR)/.modelops

.PHONY: install run test test-fast lint bench clean server pools deploy worker api

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,text]"
	$(BIN)/python -m pip check
	rm -f $(VENV)/.installed-* && touch $@

## The main job: train, gate, register, stage and promote the sample lead-scoring model,
## then serve it on 127.0.0.1 (stop it with: .venv/bin/python -m modelops stop lead-scoring).
run: $(STAMP)
	mkdir -p $(MODELOPS_HOME)
	$(BIN)/modelops run $(ARGS)

## The whole test suite (unit, flow and end-to-end tests): first in parallel, TEST_WORKERS
## xdist workers (0: one process), each test file on one worker (its module's servers start
## once); 4 suit 2 cores, since most of a test's time is spent waiting for servers (Prefect,
## MLflow, the model server) to start and answer, not computing. Then the tests marked
## `timing` (a load to measure, servers killed on cue, deadlines of seconds), alone.
TEST_WORKERS ?= 4
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not timing" --durations=20 $(PYTEST_ARGS) || test $$? -eq 5
	$(BIN)/python -m pytest -m timing --durations=10 $(PYTEST_ARGS) || test $$? -eq 5  # 5: none selected

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/lifecycle.py $(ARGS)

## The operator API (GraphQL) on 127.0.0.1:8000; needs MODELOPS_API_JWT_SECRET (see README).
api: $(STAMP)
	$(BIN)/modelops api

## Prefect for real (see README, "Prefect deployments"): run each in its own terminal.
server: $(STAMP)
	$(BIN)/prefect server start --host 127.0.0.1

pools: $(STAMP)
	$(BIN)/prefect work-pool create modelops-process --type process --overwrite
	$(BIN)/prefect work-pool create modelops-kubernetes --type kubernetes --overwrite \
	    --base-job-template deployments/work-pools/kubernetes-base-job-template.json

deploy: $(STAMP)
	$(BIN)/prefect --no-prompt deploy --all

worker: $(STAMP)
	$(BIN)/modelops worker --pool modelops-process

clean:
	rm -rf $(MODELOPS_HOME) .pytest_cache
