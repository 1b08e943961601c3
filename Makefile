# Two entry points: `make demo` (evaluate the expert baseline on the bundled benchmark) and
# `make test` (the test suite). Each installs what it needs into .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pinned on the same line as everything that depends on torch, so pip never swaps in another build
TORCH ?= torch==2.13.0

.PHONY: demo test install install-all benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.full: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)" -e ".[all,test]"
	touch $(VENV)/.base $@

install: $(VENV)/.base
install-all: $(VENV)/.full

demo: $(VENV)/.base
	$(BIN)/mmeval run --model expert --data synthetic --shots 2

test: $(VENV)/.full
	$(BIN)/python -m pytest -q

benchmarks: $(VENV)/.full
	$(BIN)/python benchmarks/local_throughput.py
	$(BIN)/python benchmarks/api_throughput.py

clean:
	rm -rf $(VENV) build dist *.egg-info reports/*/
