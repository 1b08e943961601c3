# Two entry points: `make demo` (evaluate the expert baseline on the bundled benchmark) and
# `make test` (the test suite). Each installs what it needs into .venv on first use.
# `make check` = lint (ruff) + type check (mypy) + the test suite; CI runs it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# pinned on the same line as everything that depends on torch, so pip never swaps in another build
TORCH ?= torch==2.13.0

.PHONY: demo test check lint typecheck install install-all benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.full: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q "$(TORCH)" -e ".[all,test]"
	touch $(VENV)/.base $@

$(VENV)/.dev: $(VENV)/.full
	$(BIN)/pip install -q "$(TORCH)" -e ".[all,test,dev]"
	touch $@

install: $(VENV)/.base
install-all: $(VENV)/.full

demo: $(VENV)/.base
	$(BIN)/mmeval run --model expert --data synthetic --shots 2

test: $(VENV)/.full
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check .

# mypy sees the package as installed: tasks/, prompts/ and model_adapters/ laid out inside mmeval/
TYPED := build/typecheck
typecheck: $(VENV)/.dev
	rm -rf $(TYPED) && mkdir -p $(TYPED)/mmeval
	for f in mmeval/*; do ln -s "$(CURDIR)/$$f" $(TYPED)/mmeval/; done
	for d in tasks prompts model_adapters; do ln -s "$(CURDIR)/$$d" $(TYPED)/mmeval/$$d; done
	cd $(TYPED) && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml -p mmeval

check: lint typecheck
	$(MAKE) test

# the speed figures README quotes, each script writing benchmarks/results/*.json (about 13 minutes on 2 cores)
benchmarks: $(VENV)/.full
	$(BIN)/python benchmarks/scale.py
	$(BIN)/python benchmarks/api_throughput.py
	$(BIN)/python benchmarks/api_throughput.py --photo-px 1024
	$(BIN)/python benchmarks/local_throughput.py

clean:
	rm -rf $(VENV) build dist *.egg-info reports/*/
