# Developer and CI entry points. Everything runs from the project's own virtual environment
# (.venv), so a clean machine needs only python3 (>= 3.11, with venv) and make.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: pip runs again only when pyproject.toml changes.
STAMP := $(VENV)/.installed

.PHONY: venv test lint run demo clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# No cache provider: the suite leaves nothing behind in the checkout.
test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src/evstore

# The main job: the KurrentDB-compatible server on the embedded SQLite default
# (sqlite:///evstore.db, or $EVSTORE_URL), on 127.0.0.1:2113 without TLS.
run: venv
	$(BIN)/evstore serve

demo: venv
	$(BIN)/python -m evstore.demo

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
