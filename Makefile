# costswitch: `make run` serves the demo on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run prod test bench eval-routing lint audit migrate demo clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools  # a venv's bundled setuptools has known CVEs (make audit)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

migrate: $(STAMP)
	DEBUG=1 $(BIN)/python manage.py migrate --no-input

demo: migrate
	DEBUG=1 $(BIN)/python manage.py import_models
	DEBUG=1 $(BIN)/python manage.py seed_demo

run: demo
	DEBUG=1 scripts/run.sh

# Production on one machine: needs DATABASE_URL (PostgreSQL), REDIS_URL and SECRET_KEY[_FILE].
prod: $(STAMP)
	scripts/prod.sh

test: $(STAMP)
	$(BIN)/python scripts/testservices.py $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python scripts/testservices.py $(BIN)/python bench/run.py

# Routing quality on RouteLLM's public per-prompt outcomes (read from ROUTING_DATA, never copied here).
ROUTING_DATA ?= ../shared/routing-data
eval-routing: $(STAMP)
	DEBUG=1 $(BIN)/python manage.py routing_eval --data $(ROUTING_DATA) --benchmark all \
		--out bench/routing/results.json --docs docs/routing.md

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Known vulnerabilities in the installed dependencies (PyPI's advisory data); the project itself
# is installed editable and is not on PyPI.
audit: $(STAMP)
	$(BIN)/pip-audit --skip-editable --progress-spinner off

clean:
	rm -rf $(VENV) var staticfiles
