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

# Debian's Chromium, for the test that renders an incident report in a real browser.
browser:
	sh tools/install_browser.sh

# pytest exits 5 when it collects nothing; that is not a failure of the project.
test: lint check-template browser
	$(BIN)/pytest -m "not slow" -q; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

test-slow: setup
	$(BIN)/pytest -m slow -q; status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# Benchmarks (bench/README.md): not tests, nothing fails on a time. Writes bench/results.md and results.json.
bench: setup
	$(BIN)/python -m bench.run

# The harness at its smallest size, to prove it still works; results go to a temporary folder.
bench-smoke: setup
	$(BIN)/python -m bench.run --smoke --output-dir $$(mktemp -d)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .aws-sam
