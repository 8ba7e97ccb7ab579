# Quick start:  make demo   (install, then prepare -> train -> evaluate -> transcribe on data/fsdd_demo)
#               make test   (install with the dev extra, then run the test suite)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := exp/demo

.PHONY: install demo test test-fast clean

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

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) exp
