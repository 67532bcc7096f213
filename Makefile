# Samband: the two commands are `make run` and `make test`; each does its own setup.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The suite runs on every core (up to 4 workers), a test file per worker at a time:
# most of its time is hubs, brokers and outages waiting, not CPU.
PARALLEL ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: setup test test-loaded lint run firmware bench vhub clean

setup:
	@bash host/scripts/setup.sh

test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -q $(PARALLEL) $(PYTEST_ARGS)

# `make test` N times (SAMBAND_LOADED_RUNS, default 10) with every core kept busy
test-loaded: setup
	@bash host/scripts/test-loaded.sh

lint: setup
	$(BIN)/ruff check .

run: setup
	$(BIN)/samband run

firmware: setup
	$(BIN)/samband firmware

vhub: setup
	$(BIN)/samband vhub --link build/vhub.tty --provisioned

bench: setup
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf build .pytest_cache
