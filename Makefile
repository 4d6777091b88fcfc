# firstvalue: every target is a line or two; the work is in deploy/local/*.sh.
#   make run        embedded all-in-one (SQLite, in-memory bus), no servers needed
#   make test       ruff + pytest against a real PostgreSQL and Kafka (started and stopped here)
#   make stack      PostgreSQL + Kafka + the three services as separate processes (Ctrl-C stops)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: venv dev-venv run test lint typecheck migrate stack bench services-up services-down clean

venv: $(STAMP)
dev-venv: $(DEV_STAMP)

# Re-install only when pyproject.toml is newer than the stamp. `make run` needs the runtime
# dependencies only (a faster first start); tests and tools add the dev extra.
$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e . && touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install -q -e '.[dev]' && touch $(DEV_STAMP)

run: venv
	$(VENV)/bin/firstvalue run

test: dev-venv
	bash deploy/local/test.sh

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: dev-venv
	$(VENV)/bin/mypy shared services firstvalue

migrate: venv
	$(VENV)/bin/firstvalue migrate

stack: venv
	bash deploy/local/stack.sh

# Runs every bench/*.py against fresh servers (FIRSTVALUE_TEST_* variables set).
bench: dev-venv
	bash deploy/local/with-servers.sh bash -c 'shopt -s nullglob; failed=""; for f in bench/*.py; do echo "== $$f"; $(VENV)/bin/python "$$f" || failed="$$failed $$f"; done; test -z "$$failed" || { echo "failed:$$failed"; exit 1; }'

# PostgreSQL + Kafka alone in .cache/services, for running services or tests by hand:
#   make services-up && source .cache/services/env && .venv/bin/pytest -m integration; make services-down
services-up:
	mkdir -p .cache/services && pg=$$(bash deploy/local/postgres.sh start .cache/services/postgres) && kafka=$$(bash deploy/local/kafka.sh start .cache/services/kafka) && \
	printf 'export FIRSTVALUE_DATABASE_URL=%s FIRSTVALUE_TEST_DATABASE_URL=%s\nexport FIRSTVALUE_KAFKA_BOOTSTRAP_SERVERS=%s FIRSTVALUE_TEST_KAFKA_BOOTSTRAP_SERVERS=%s\nexport FIRSTVALUE_ALLOW_NON_DURABLE_DATABASE=true\n' "$$pg" "$$pg" "$$kafka" "$$kafka" | tee .cache/services/env

services-down:
	bash deploy/local/kafka.sh stop .cache/services/kafka; bash deploy/local/postgres.sh stop .cache/services/postgres; rm -rf .cache/services

# Keeps the downloaded Kafka jars (.cache/kafka, .cache/m2); rm -rf .cache for those too.
clean:
	-$(MAKE) --no-print-directory services-down 2>/dev/null
	rm -rf $(VENV) .cache/run-* .cache/stack .pytest_cache .ruff_cache .mypy_cache .hypothesis build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
