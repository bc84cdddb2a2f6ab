# Every target works from a fresh clone on a machine with python3 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
EXTRAS  := cpu,cuda,openai,stats,airflow,dev
STAMP   := $(VENV)/.installed-stamp
export BENCH_HOME ?= $(CURDIR)/.bench
export PYTHONUNBUFFERED := 1
PYTEST_ARGS ?=

.PHONY: install test demo airflow bench-perf lint constraints clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[$(EXTRAS)]'
	@touch $@

install: $(STAMP)  ## the pinned environment in .venv

test: $(STAMP)  ## the whole suite (what .ci/run calls)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bench tests dags plugins benchmarks
	$(BIN)/mypy

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

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache
