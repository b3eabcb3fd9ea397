# `make demo` and `make test` each set up .venv when it is missing or pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR := data/demo
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint docs dbt-parse pytest java kannel chromium postgres gateway-up gateway-down \
	dagster soak bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev,spark]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -c "import orchestration.definitions, dbt.version, great_expectations"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/retentext demo --out $(DEMO_DIR)
	@echo "landing files: $(DEMO_DIR)/landing (simulated history, plus the customers' responses to the sends)"
	@echo "warehouse: $(DEMO_DIR)/warehouse.duckdb (raw.*, raw.quarantine, marts.*, predictions.*, sends.* decisions and messages, experiments.*; open with duckdb or any BI tool)"
	@echo "outbox: $(DEMO_DIR)/outbox (JSON-lines batches with manifests)"
	@echo "reports: $(DEMO_DIR)/reports/index.html (start here: the program and a verdict per campaign), one page per campaign, incrementality.html, cohorts.html"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# docs/landing-contract.md from ingest/sources.yaml (a test fails when they differ)
docs: $(STAMP)
	$(BIN)/python -m ingest.contract_doc

dbt-parse: $(STAMP)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet

# Spark (dbt-spark session mode) needs a Java 17 runtime; Debian's package if none is there.
java:
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless)

# The SMS gateway: Debian's kannel (bearerbox, smsbox) and kannel-extras (fakesmsc).
kannel:
	@command -v bearerbox >/dev/null && test -x /usr/lib/kannel/test/fakesmsc || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kannel kannel-extras)

# Headless Chromium opens the HTML reports in the tests.
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

# PostgreSQL for Dagster's production storage (the tests start a server on loopback).
postgres:
	@command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql)

# Dagster's webserver and daemon on this repository's instance (dagster.yaml, history in
# data/dagster/); schedules and sensors start running. Ctrl-C stops both.
DAGSTER_HOME ?= $(CURDIR)/data/dagster
DAGSTER_PORT ?= 3000
dagster: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	test -e $(DAGSTER_HOME)/dagster.yaml || ln -s $(CURDIR)/deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	DAGSTER_HOME=$(DAGSTER_HOME) $(BIN)/dagster instance concurrency set warehouse 1 >/dev/null
	@echo "Dagster UI: http://127.0.0.1:$(DAGSTER_PORT) (instance: $(DAGSTER_HOME))"
	DAGSTER_HOME=$(DAGSTER_HOME) PATH=$(CURDIR)/$(BIN):$$PATH \
		DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=$${DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS:-true} \
		$(BIN)/dagster dev -m orchestration.definitions -h 127.0.0.1 -p $(DAGSTER_PORT)

# A local Kannel + fakesmsc carrier + receiver + link service on loopback (pid files in
# data/kannel).
gateway-up: $(STAMP) kannel
	$(BIN)/retentext gateway up --receiver --links

gateway-down: $(STAMP)
	$(BIN)/retentext gateway down

# Three workers on two cores: much of the suite waits (Kannel, Chromium, the Dagster daemon,
# dbt and Spark start-up, delivery grace periods), so a third worker fills the gaps. The
# slowest tests are printed at the end.
pytest: $(STAMP) java kannel chromium postgres
	$(BIN)/pytest -n 3 --dist loadgroup --durations=15

test: lint dbt-parse pytest

# The send invariants over 10,000 random worlds (about an hour on 2 cores).
soak: $(STAMP)
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest tests/test_properties.py -p no:cacheprovider --hypothesis-show-statistics

# The scale harness at N customers (default 1M: about 10 minutes, 12 GB to simulate once).
N ?= 1000000
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --customers $(N)

clean:
	rm -rf $(VENV) data/demo data/compare .spark dbt_project/target dbt_project/logs .pytest_cache
