# Lockgate — two commands: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export LOCKGATE_HOME := $(CURDIR)

.PHONY: setup demo test test-unit test-integration lint airflow-ui bench clean help

help:
	@echo "make demo   - set up, build the demo source and ingest it through Airflow (3 daily intervals)"
	@echo "make test   - set up and run the whole test suite (needs PostgreSQL and MariaDB on 127.0.0.1)"
	@echo "make lint   - ruff"
	@echo "make bench  - measure Lockgate against psql COPY, ConnectorX and dlt (bench/results/latest.*)"
	@echo "make airflow-ui - Airflow standalone on http://127.0.0.1:8080 with the Lockgate DAGs"
	@echo "make clean  - remove the lake, the warehouse, the demo source and local Airflow state"

setup:
	@scripts/setup.sh

demo: setup
	$(VENV)/bin/lockgate demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest tests/unit tests/dags $(PYTEST_ARGS)

bench:
	@LOCKGATE_SYNC_ARGS="--group bench" scripts/setup.sh
	$(PY) bench/run.py $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check dags plugins spark_jobs tests

# The environment goes through a private file (it may hold connection passwords), never
# through the terminal; it puts .venv/bin on PATH, binds the UI to 127.0.0.1 and gives
# the SQLite metadata database a busy timeout; `lockgate airflow-db` migrates it and
# switches it to write-ahead logging, so CLI commands run beside the scheduler.
airflow-ui: setup
	@env_file="$$($(VENV)/bin/lockgate airflow-env)" && set -a && . "$$env_file" && set +a && \
		$(VENV)/bin/lockgate airflow-db && exec $(VENV)/bin/lockgate airflow-standalone

clean:
	rm -rf lake warehouse landing/shop .lockgate/airflow .lockgate/airflow.env .lockgate/logs .lockgate/demo
