# Two commands do all set-up on a fresh machine with python3, git and make:
#   make demo   install, then run the export flow against the built-in sandbox into ./demo-output
#   make test   install, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test lint bench lock clean docs docs-serve

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m flows.encoura_export --sandbox

test: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m bench

# The manual (docs/, mkdocs.yml): built --strict, so a broken link or a page missing from the nav fails.
docs: install
	$(BIN)/python -m mkdocs build --strict

docs-serve: install
	$(BIN)/python -m mkdocs serve

# Re-resolve the lock file after changing dependencies in pyproject.toml (needs uv).
lock: install
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --extra test --extra postgres --python-version 3.11 -o requirements.lock

clean:
	rm -rf $(VENV) .state demo-output .pytest_cache site
