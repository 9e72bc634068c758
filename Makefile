# One entry point for people and CI. `make demo` and `make test` each set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint check-template browser test-slow bench bench-smoke clean

$(STAMP): pyproject.toml shared/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/rescind demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

check-template: setup
	$(BIN)/cfn-lint template.yaml

# A headless Chromium (Debian's chromium-headless-shell, nothing else) for the test that renders an incident
# report in a real browser; the script says what it installs and why, and never upgrades an installed package.
browser:
	sh tools/install_browser.sh

# Tests run on one pytest-xdist worker per core (PYTEST_WORKERS=0: all in this one process). Each worker is
# its own session, with its own OpenBao on a free port; a test file stays on one worker (--dist loadfile), so a
# module's fixtures are built once. pytest exits 5 when it collects nothing; that is not a failure of the project.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile

test: lint check-template browser
	$(BIN)/pytest -m "not slow" -q $(PYTEST_PARALLEL); status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

test-slow: setup
	$(BIN)/pytest -m slow -q $(PYTEST_PARALLEL); status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# Benchmarks (bench/README.md): not tests, nothing fails on a time. Writes bench/results.md and results.json.
bench: setup
	$(BIN)/python -m bench.run

# The harness at its smallest size, to prove it still works; results go to a temporary folder.
bench-smoke: setup
	$(BIN)/python -m bench.run --smoke --output-dir $$(mktemp -d)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .aws-sam
