# The two commands a new user needs:
#   make run    install, then run the whole pipeline locally on the embedded broker
#   make test   install, then run every test (what CI runs)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test test-unit run proto lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

test: install
	$(BIN)/python -m pytest tests

test-unit: install
	$(BIN)/python -m pytest tests/unit

# ARGS passes options through, e.g. make run ARGS="--rate 20 --duration 120 --seed 7"
run: install
	$(BIN)/cctriage-demo $(ARGS)

proto: install
	$(BIN)/python proto/generate.py

lint: install
	$(BIN)/ruff check services tests bench proto

clean:
	rm -rf $(VENV) .pytest_cache
