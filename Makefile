# Every target works from a fresh clone on a machine with python3 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
EXTRAS  := cpu,cuda,openai,stats,airflow,dev
STAMP   := $(VENV)/.installed-stamp
# The second tested set (CI's second leg): the newest transformers 5.x, torch
# CPU, no Airflow. Its tests: everything that does not need Airflow.
VENV_TF5   := .venv-tf5
BIN_TF5    := $(VENV_TF5)/bin
EXTRAS_TF5 := cpu,cuda,openai,stats,dev
STAMP_TF5  := $(VENV_TF5)/.installed-stamp
# what touches transformers (or its tokenizers, or a model it saved) and the store
TESTS_TF5  := tests/core tests/backends tests/environment tests/orchestration tests/store \
              tests/benchmarks tests/test_timingcheck.py tests/test_lint.py
export BENCH_HOME ?= $(CURDIR)/.bench
export PYTHONUNBUFFERED := 1
# Test files spread over PYTEST_WORKERS processes (a file's tests stay together:
# module fixtures such as an Airflow cluster start once); the slowest tests in
# every run's summary: where CI's minutes go.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile --durations=25

.PHONY: install install-tf5 test test-tf5 demo airflow bench-perf lint constraints constraints-tf5 clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

install: $(STAMP)  ## the pinned environment in .venv

# The one test that needs both venvs (two_generations) runs in test-tf5.
test: $(STAMP)  ## the whole suite (what .ci/run calls)
	$(BIN)/python -m pytest -m 'not two_generations' $(PYTEST_ARGS)

$(STAMP_TF5): pyproject.toml constraints-tf5.txt
	$(PY) -m venv $(VENV_TF5)
	$(BIN_TF5)/python -m pip install -q --upgrade pip
	$(BIN_TF5)/python -m pip install -c constraints-tf5.txt -e '.[$(EXTRAS_TF5)]'
	@touch $@

# With the pinned .venv beside it, a tiny model is built under each generation
# and run under the other (BENCH_OTHER_PYTHON).
install-tf5: $(STAMP_TF5)  ## the transformers 5.x environment in .venv-tf5

test-tf5: $(STAMP_TF5)  ## the suite but Airflow on transformers 5.x (.ci/run's second leg)
	BENCH_OTHER_PYTHON=$(if $(wildcard $(BIN)/python),$(CURDIR)/$(BIN)/python) \
	  $(BIN_TF5)/python -m pytest $(TESTS_TF5) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bench tests dags plugins benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

demo: $(STAMP)  ## tiny model + the smoke campaign through Airflow + summary
	$(BIN)/python -m bench.demo

airflow: $(STAMP)  ## airflow standalone with the project's dags/plugins, UI on :8080
	$(BIN)/python -m bench.orchestration.airflow_env standalone

bench-perf: $(STAMP)  ## performance benchmarks (ratios measured side by side)
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/client_overhead.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/trend_queries.py
	$(BIN)/python benchmarks/orchestration.py
	$(BIN)/python benchmarks/detector_eval.py
	$(BIN)/python benchmarks/detector_eval.py --single

constraints: $(STAMP)  ## refresh constraints.txt from the working .venv
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

constraints-tf5: $(STAMP_TF5)  ## refresh constraints-tf5.txt from a working .venv-tf5
	{ grep '^#' constraints-tf5.txt; $(BIN_TF5)/python -m pip freeze --exclude-editable \
	  | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > constraints-tf5.txt.new \
	  && mv constraints-tf5.txt.new constraints-tf5.txt

clean:
	rm -rf $(VENV) $(VENV_TF5) .bench .pytest_cache .mypy_cache .ruff_cache
