# Thin wrappers over plain commands (the README lists them for systems without make).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
BENCH_ARGS ?= --spark 1M --dashboard 1M --large-runs 1
# make test's pytest-xdist workers (0: one process, no workers)
TEST_WORKERS ?= 2
# what pytest's addopts leave to their own targets (test-wheel, hardening, test-spark, test-golden)
NOT_OWN_TARGET := not wheel and not hardening and not spark and not golden

.PHONY: run test test-browser test-golden test-spark test-spark-golden test-wheel hardening hardening-sessions dist lint sample bench clean

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

# Everything but the browser tests and the other targets' tests. The work is mostly one core's
# (Python and small DuckDB queries), so two workers take each a whole test file at a time (module
# fixtures are built once, a file's tests run in their order).
test: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "$(NOT_OWN_TARGET) and not browser"

# The tests that drive a headless Chromium against `streamlit run app.py` (marker `browser`; they run
# under CI=true, elsewhere they skip unless CAPI_BROWSER_TESTS=1). One process: they wait on real pages
# with timeouts, which a second worker competing for the two cores would only make flaky.
test-browser: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest -m "$(NOT_OWN_TARGET) and browser"

$(VENV)/.spark-stamp: requirements-spark.txt $(VENV)/.dev-stamp
	$(BIN)/pip install -r requirements-spark.txt
	touch $@

SPARK_TESTS := tests/test_spark.py tests/test_dedup.py tests/test_timing.py tests/test_match_keys.py tests/test_match_keys_gaps.py

# The Spark engine (pyspark and Java 17): `report --engine spark` on the demo against DuckDB's
# JSON, a partitioned Parquet folder and table inputs, the import's rules, and the dedup, timing and
# match-key tests on a local[2] session.
test-spark: $(VENV)/.spark-stamp
	$(BIN)/python -m pytest -m spark $(SPARK_TESTS)

# The golden reports (tests/golden/) on the 100k benchmark logs with DuckDB, and every golden report on
# Spark local[2]: the figures of the commit before the restructure, held on both engines.
test-golden: $(VENV)/.spark-stamp
	$(BIN)/python -m pytest -m golden tests/test_golden.py

# Both of the above in one pytest run (what .ci/run calls): one Java start, one Spark session for
# every case (the golden reports' `report --engine spark` uses the running session and leaves it).
test-spark-golden: $(VENV)/.spark-stamp
	$(BIN)/python -m pytest -m "spark or golden" $(SPARK_TESTS) tests/test_golden.py

# Builds the sdist and wheel, installs the wheel into a fresh venv under the temp folder and runs the
# installed capi-diag from another folder (tests/test_wheel.py; `make test` leaves these out).
test-wheel: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest -m wheel tests/test_wheel.py

# The hardening suite: hostile files, PII at rest, exports, secrets, sessions, Graph faults,
# limits. Each module records its figures under bench/results/hardening/; the report collates them.
hardening: $(VENV)/.dev-stamp
	rm -rf bench/results/hardening
	$(BIN)/python -m pytest -m hardening tests/hardening
	$(BIN)/python bench/hardening_report.py

# Only the twenty concurrent browser sessions (part of make hardening; about 6 minutes on 2 cores).
hardening-sessions: $(VENV)/.dev-stamp
	$(BIN)/python -m pytest -m "hardening and load" tests/hardening/test_sessions.py
	$(BIN)/python bench/hardening_report.py

# dist/capi_diag-<version>-py3-none-any.whl (and the sdist): for `pipx install dist/capi_diag-*.whl`.
dist: $(VENV)/.dev-stamp
	$(BIN)/python -m build --outdir dist

lint: $(VENV)/.dev-stamp
	$(BIN)/ruff check .

sample: $(VENV)/.req-stamp
	$(BIN)/python -m capi_diag sample --out data --sessions 1500 --seed 7

# The benchmark (not part of `make test`): make bench BENCH_ARGS="--sizes 100k,1M --runs 3"
bench: $(VENV)/.req-stamp
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache dist
