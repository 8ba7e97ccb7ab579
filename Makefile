# Quick start:  make demo   (install, then prepare -> train -> evaluate -> transcribe on data/fsdd_demo)
#               make test   (install with the dev extra, then run the test suite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := exp/demo

.PHONY: install demo lint test test-fast clean

# Dependencies are installed once per virtual environment (again when pyproject.toml changes);
# the project itself is re-linked every time, so a reused environment always runs this checkout.
$(VENV)/.deps: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.deps
	$(BIN)/python -m pip install --quiet --no-deps -e .

demo: install
	$(BIN)/asr prepare fsdd --src data/fsdd_demo --out $(DEMO)/data
	$(BIN)/asr train --config recipes/fsdd/demo.toml --train $(DEMO)/data/train.jsonl --dev $(DEMO)/data/dev.jsonl --exp $(DEMO)
	$(BIN)/asr evaluate --model $(DEMO) --manifest $(DEMO)/data/test.jsonl --out $(DEMO)/eval
	$(BIN)/asr transcribe data/fsdd_demo/recordings/7_theo_0.wav data/fsdd_demo/recordings/4_george_1.wav --model $(DEMO)

lint: install
	$(BIN)/ruff check asr tests benchmarks recipes
	$(BIN)/ruff format --check asr tests benchmarks recipes

# everything: lint, then every test (the slow recipe runs and the training tests included)
test: lint
	$(BIN)/python -m pytest

# no model trained, no end-to-end run: under 2 minutes on 2 cores (README, Development)
test-fast: install
	$(BIN)/python -m pytest -m "not slow and not trains"

clean:
	rm -rf $(VENV) exp
