# Thin wrappers over plain commands (the README lists them for systems without make).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
BENCH_ARGS ?=

.PHONY: run test lint sample bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.req-stamp: requirements.txt $(BIN)/python
	$(BIN)/pip install -r requirements.txt
	touch $@

$(VENV)/.dev-stamp: requirements.txt requirements-dev.txt $(BIN)/python
	$(BIN)/pip install -r requirements-dev.txt
	touch $(VENV)/.req-stamp $@

run: $(VENV)/.req-stamp
	$(BIN)/streamlit run app.py --server.port $(PORT)

test: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check .

sample: $(VENV)/.req-stamp
	$(BIN)/python -m capi_diag sample --out data --sessions 1500 --seed 7

# issue 9's benchmark (not part of `make test`): make bench BENCH_ARGS="--sizes 100k,1M --runs 3"
bench: $(VENV)/.req-stamp
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
