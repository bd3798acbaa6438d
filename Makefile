# `make test` and `make demo` work on a fresh machine: they create .venv and install stpn into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint demo demo-sot demo-vis bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

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
	rm -rf $(VENV) build src/*.egg-info
