# fairuse: the two commands are `make run` and `make test`; see README.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.fairuse-installed
KAFKA := deploy/kafka
# `make test` runs its own throwaway broker on free ports (deploy/test.sh), so a development
# broker (`make broker-start`, KAFKA_PORT, default 19092) and other test runs are not disturbed.
PYTEST_ARGS ?=

.PHONY: help venv kafka broker-start broker-stop broker-status topics test lint run

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) ## create .venv and install fairuse with its test extras

$(VENV_STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

kafka: ## fetch the pinned Kafka jars from Maven Central into the cache (once)
	$(KAFKA)/fetch.sh

broker-start: kafka ## start (or reuse) the local broker on KAFKA_PORT (default 19092)
	$(KAFKA)/start.sh

broker-stop: ## stop the local broker
	$(KAFKA)/stop.sh

broker-status: ## is the local broker running and answering?
	$(KAFKA)/status.sh

topics: venv ## create the pipeline's topics on FAIRUSE_KAFKA_BOOTSTRAP (idempotent)
	$(VENV)/bin/fairuse topics create

test: venv kafka ## fresh private broker, the whole pytest suite, broker stopped (deploy/test.sh)
	deploy/test.sh $(PYTEST_ARGS)

lint: venv ## ruff check and format check
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

run: venv kafka ## the main job on the embedded defaults (see deploy/run.sh)
	deploy/run.sh
