# `make test` and `make demo` work on a fresh machine: they create .venv and install stpn into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint docs demo demo-sot demo-vis bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks hubconf.py

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/stpn demo

demo-sot: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/stpn demo --task sot

demo-vis: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/stpn demo --task vis

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) build site src/*.egg-info
