# aiproxy — every target creates .venv and installs what it needs from the repo's own files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PYTEST := $(PY) -m pytest

.PHONY: install install-dev run run-dev demo test test-unit test-integration test-coverage \
        bench soak lint docker-build docker-up docker-logs docker-down clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP) $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(PY) run.py

run-dev: $(DEV_STAMP)
	$(PY) -m aiproxy --reload

demo: $(STAMP)
	$(PY) -m aiproxy demo

test: $(DEV_STAMP)
	$(PYTEST) -q

test-unit: $(DEV_STAMP)
	$(PYTEST) -q tests/unit

test-integration: $(DEV_STAMP)
	$(PYTEST) -q tests/integration

test-coverage: $(DEV_STAMP)
	$(PYTEST) -q --cov=aiproxy --cov-report=term-missing --cov-report=html

# The same pinned ruff and mypy (requirements-dev.txt) and settings (pyproject.toml) as CI.
lint: $(DEV_STAMP)
	$(PY) -m ruff check aiproxy tests bench
	$(PY) -m mypy aiproxy

bench: $(DEV_STAMP)
	$(PY) -m bench

soak: $(DEV_STAMP)
	$(PY) -m bench.soak

docker-build:
	docker build -t aiproxy:latest .

docker-up:
	docker compose up -d

docker-logs:
	docker compose logs -f

docker-down:
	docker compose down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage
