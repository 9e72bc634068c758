# One entry point for people and CI. `make demo` and `make test` each set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint check-template browser test-slow bench bench-smoke clean
.PHONY: python312 build sam-build build-RescindLayer build-CryptographyLayer build-PostgresDriverLayer lock test312

# The Lambda runtime's Python (template.yaml: Runtime python3.12), which `sam build` and `make test312` need: the
# first that runs of pyenv's 3.12 installs and python3.12 on PATH (pyenv's shim on PATH fails while 3.12 is not
# the selected version). `make PYTHON312=/path/to/python3.12` chooses another.
ifndef PYTHON312
PYTHON312 := $(shell for candidate in $$(ls -d $(HOME)/.pyenv/versions/3.12.*/bin/python3.12 2>/dev/null | sort -rV) \
	$$(command -v python3.12); do "$$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' \
	2>/dev/null && { echo "$$candidate"; break; }; done)
endif
VENV312 ?= .venv312
STAMP312 := $(VENV312)/.installed-stamp

# A virtual environment with the project and its development tools: $(call install-venv,python,folder).
define install-venv
	$(1) -m venv $(2)
	$(2)/bin/python -m pip install --quiet --upgrade pip
	$(2)/bin/python -m pip install --quiet -e '.[dev]'
endef

$(STAMP): pyproject.toml shared/requirements.txt
	$(call install-venv,$(PYTHON),$(VENV))
	touch $(STAMP)

# Then the layer's own locked versions over the tools' choice (pydantic 2.14.4 where aws-sam-translator asks for
# ~=2.13.3), so the python3.12 tier runs what Lambda runs: models built on first use (rescind.deferred_builds).
$(STAMP312): pyproject.toml shared/requirements.txt shared/requirements.lock | python312
	$(call install-venv,$(PYTHON312),$(VENV312))
	$(VENV312)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		-r shared/requirements.lock
	touch $(STAMP312)

setup: $(STAMP)

demo: setup
	$(BIN)/rescind demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# Both templates, through cfn-lint (with .cfnlintrc's rules) and through `sam validate --lint` (the SAM CLI's own
# check, as `sam deploy` users run it). Neither needs credentials or a region (SAM CLI 1.170, offline); the caller's
# are hidden and dummy ones given, so a stale profile or real account cannot change the result.
SAM_OFFLINE = env -u AWS_PROFILE -u AWS_DEFAULT_PROFILE -u AWS_SESSION_TOKEN AWS_DEFAULT_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline SAM_CLI_TELEMETRY=0
TEMPLATES := template.yaml member-account.yaml

check-template: setup
	$(BIN)/cfn-lint $(TEMPLATES)
	for template in $(TEMPLATES); do $(SAM_OFFLINE) $(SAM) validate --lint --template $$template || exit 1; done

# A headless Chromium (Debian's chromium-headless-shell, nothing else) for the test that renders an incident
# report in a real browser; the script says what it installs and why, and never upgrades an installed package.
browser:
	sh tools/install_browser.sh

# Tests run on one pytest-xdist worker per core (PYTEST_WORKERS=0: all in this one process). Each worker is
# its own session, with its own OpenBao on a free port; a test file stays on one worker (--dist loadfile), so a
# module's fixtures are built once. pytest exits 5 when it collects nothing; that is not a failure of the project.
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) --dist loadfile

test: lint check-template browser test312
	$(BIN)/pytest -m "not slow" -q $(PYTEST_PARALLEL); status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# The unit and integration tests again under python3.12, the Lambda runtime's Python (slow tests left out).
test312: $(STAMP312)
	$(VENV312)/bin/pytest -m "(unit or integration) and not slow" -q $(PYTEST_PARALLEL); status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

test-slow: setup
	$(BIN)/pytest -m slow -q $(PYTEST_PARALLEL); status=$$?; [ $$status -eq 0 ] || [ $$status -eq 5 ]

# Benchmarks (bench/README.md): not tests, nothing fails on a time. Writes bench/results.md and results.json.
bench: setup
	$(BIN)/python -m bench.run

# The harness at its smallest size, to prove it still works; results go to a temporary folder.
bench-smoke: setup
	$(BIN)/python -m bench.run --smoke --output-dir $$(mktemp -d)

# --- Build for Lambda (README "Build") --------------------------------------------------------------------
BUILD_DIR ?= .aws-sam/build
SAM ?= $(BIN)/sam
SAM_BUILD_OPTIONS ?=

python312:
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: sam build and make test312 need the Lambda runtime's" \
		"Python (template.yaml Runtime python3.12). Looked for $(HOME)/.pyenv/versions/3.12.*/bin/python3.12 and" \
		"python3.12 on PATH. Install it (pyenv install 3.12) or pass PYTHON312=/path/to/python3.12." >&2; exit 1; }
	@echo "$(PYTHON312)"

# Functions and layer into $(BUILD_DIR), with python3.12 first on PATH, where sam build looks for it.
build: setup sam-build

sam-build: python312
	PATH="$(dir $(PYTHON312)):$$PATH" SAM_CLI_TELEMETRY=0 $(SAM) build --build-dir $(BUILD_DIR) $(SAM_BUILD_OPTIONS)

# The layers (template.yaml RescindLayer, CryptographyLayer and PostgresDriverLayer, BuildMethod makefile). sam build
# runs each target in a copy of shared/, with ARTIFACTS_DIR set. Each installs its share of the hash-checked wheels
# that requirements.lock pins, for the functions' architecture (arm64: manylinux2014_aarch64, CPython 3.12): the
# RescindLayer all but CRYPTOGRAPHY_PACKAGES and POSTGRES_PACKAGES, plus the rescind package; the CryptographyLayer
# only CRYPTOGRAPHY_PACKAGES, which only the functions that parse certificates carry; the PostgresDriverLayer only
# POSTGRES_PACKAGES, which only the PostgreSQL rotation hook carries. --no-deps, because the lock leaves out
# botocore and what only botocore needs (python-dateutil, which pg8000 also asks for): the Lambda runtime provides
# them with boto3, and a copy here would drift from it.
LAYER_PLATFORM ?= manylinux2014_aarch64
CRYPTOGRAPHY_PACKAGES := cryptography cffi pycparser
POSTGRES_PACKAGES := pg8000 scramp asn1crypto

# $(call install-locked,names,chosen): pip installs the lock's entries that are (chosen=1) or are not (chosen=0)
# among `names` into $(ARTIFACTS_DIR)/python. An entry is its `name==version \` line and its hash lines.
define install-locked
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: sam build sets it (make build)" >&2; exit 1; }
	requirements=$$(mktemp) && \
	awk -v names=" $(1) " -v chosen=$(2) \
		'/^[a-z0-9]/ { name = $$1; sub(/==.*/, "", name); keep = (index(names, " " name " ") > 0) == chosen } \
		/^[a-z0-9]/ || /^ +--hash=/ { if (keep) print }' requirements.lock > "$$requirements" && \
	$(PYTHON312) -m pip install --quiet --no-compile --disable-pip-version-check --no-deps --require-hashes \
		--only-binary=:all: --platform $(LAYER_PLATFORM) --implementation cp --python-version 3.12 \
		--target "$(ARTIFACTS_DIR)/python" -r "$$requirements"; \
	status=$$?; rm -f "$$requirements"; exit $$status
	# No console scripts (bin/, with this machine's interpreter in their first line).
	rm -rf "$(ARTIFACTS_DIR)/python/bin"
endef

# Bytecode for the runtime, so a cold start does not compile the layer: /opt is read-only, so Python can neither
# write it there nor keep what it compiled. unchecked-hash: Python loads each .pyc without comparing it with its
# source (the zip's timestamps are not the build's). Every python3.12 release reads and writes the same bytecode
# (one magic number, 3531, from 3.12.0 on), so the build's 3.12.x and the runtime's may differ. Paths in the
# bytecode are /opt/python/..., so the same lock and sources give the same bytes wherever sam build ran, and a
# rebuild does not make a new layer version. No bytecode from shared/ is shipped: it is compiled here.
define compile-layer
	find "$(ARTIFACTS_DIR)/python" -name __pycache__ -type d -prune -exec rm -rf {} +
	$(PYTHON312) -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$(ARTIFACTS_DIR)/python" \
		-p /opt/python "$(ARTIFACTS_DIR)/python"
endef

build-RescindLayer: python312
	$(call install-locked,$(CRYPTOGRAPHY_PACKAGES) $(POSTGRES_PACKAGES),0)
	cp -R rescind "$(ARTIFACTS_DIR)/python/"
	$(call compile-layer)

build-CryptographyLayer: python312
	$(call install-locked,$(CRYPTOGRAPHY_PACKAGES),1)
	$(call compile-layer)

build-PostgresDriverLayer: python312
	$(call install-locked,$(POSTGRES_PACKAGES),1)
	$(call compile-layer)

# Pin the layer's dependencies again from shared/requirements.txt; LOCK_OPTIONS=--upgrade takes newer releases.
LOCK_OPTIONS ?=
lock: setup
	$(BIN)/uv pip compile shared/requirements.txt --quiet --generate-hashes --custom-compile-command "make lock" \
		--python-version 3.12 --python-platform aarch64-manylinux2014 \
		--no-emit-package botocore --no-emit-package python-dateutil --no-emit-package six \
		--output-file shared/requirements.lock $(LOCK_OPTIONS)

clean:
	rm -rf $(VENV) $(VENV312) .mypy_cache .ruff_cache .aws-sam
