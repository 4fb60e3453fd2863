# Two commands matter: `make demo` (set up + run the main job) and `make test`.
SHELL := /bin/bash
# Python 3.11 (the torch CPU wheel on these machines is cp311): PATH first, then pyenv's.
PY ?= $(firstword $(shell command -v python3.11) $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python3.11) python3.11)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/var/dagster_home
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test dev install clean bench

$(BIN)/python:
	@command -v $(PY) >/dev/null || { echo "need $(PY)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first: torch==2.13.0 is a CPU wheel on these machines; any other spec, or letting
# sentence-transformers pull torch in, downloads a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/aisg demo

test: install
	$(BIN)/python -m pytest -q aisg_pipelines_tests

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

bench: install
	@echo "see benchmarks/README.md: each benchmark is one command"

clean:
	rm -rf var
