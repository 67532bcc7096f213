# Samband: the two commands are `make run` and `make test`; each does its own setup.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup test run firmware bench vhub clean

setup:
	@bash host/scripts/setup.sh

test: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

run: setup
	$(BIN)/samband run

firmware: setup
	$(BIN)/samband firmware

vhub: setup
	$(BIN)/samband vhub --link build/vhub.tty

bench: setup
	$(BIN)/python tests/bench/run.py

clean:
	rm -rf build .pytest_cache
