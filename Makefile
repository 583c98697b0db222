# cstowatch: `make demo` runs a full monitoring run on the bundled demo, `make test` the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CSTOWATCH := $(VENV)/bin/cstowatch
STAMP := $(VENV)/.install-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: help install install-browser demo test test-fast lint bench train evaluate site clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cstowatch needs Python >= 3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, as exactly 2.13.0: the CPU build stored on this machine
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(CSTOWATCH) model prepare
	touch $(STAMP)

install: $(STAMP) ## Create .venv, install cstowatch with dev extras, rebuild the encoder

install-browser: ## Install Debian's headless Chromium for the report's browser test
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

demo: $(STAMP) ## Serve the bundled demo web and run the monitor flow on it once
	$(CSTOWATCH) demo

test: $(STAMP) ## Run the whole test suite (offline)
	$(PY) -m pytest -q

test-fast: $(STAMP) ## Tests without the slow end-to-end and server tests
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP) ## ruff and mypy on the packages
	$(VENV)/bin/ruff check crawlers estimation flows nlp warehouse tests
	$(VENV)/bin/mypy crawlers estimation flows nlp warehouse

train: $(STAMP) ## Retrain the bundled stance model on nlp/data and score the dev split
	$(CSTOWATCH) train

evaluate: $(STAMP) ## Dev-split metrics of the bundled stance model
	$(CSTOWATCH) evaluate

site: $(STAMP) ## Rebuild demo/site from demo/content
	$(PY) demo/build.py

BENCHES := bench/crawl.py bench/classify.py bench/alerts.py bench/warehouse.py

bench: $(STAMP) ## Run the benchmarks (prints figures; see README); not bench/finetune_compare.py
	for b in $(BENCHES); do echo "== $$b"; $(PY) $$b || exit 1; done

clean: ## Remove data/ and caches (keeps .venv)
	rm -rf data .pytest_cache .ruff_cache .mypy_cache
