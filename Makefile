# Two commands matter: `make demo` and `make test`. Both set up .venv first (once; again when pyproject changes).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup demo test lint browser dicom3tools postgres system-deps clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The whole pipeline on synthetic data, locally: synth -> metadata -> clean -> explore -> baseline -> train
# (two architectures) -> compare -> predict. Outputs land in demo-data/.
demo: setup clean-demo
	RAY_AUTH_MODE=disabled PATH="$(CURDIR)/$(BIN):$$PATH" bash pipelines/demo.sh demo-data

# The end-to-end tests drive the MLflow UI in Debian's chromium; install it when we can (root + apt).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "note: chromium not found; the MLflow UI test needs Debian's chromium package"; fi; }

# The synthetic-writer test checks every variant with dicom3tools' dciodvfy; install it the same way.
dicom3tools:
	@command -v dciodvfy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools >/dev/null; \
	  else echo "note: dciodvfy not found; the DICOM conformance test needs Debian's dicom3tools package"; fi; }

# The MLflow e2e test also runs the tracking server on PostgreSQL, started by the test (Debian's postgresql).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: PostgreSQL not found; the MLflow-on-PostgreSQL test needs Debian's postgresql package"; fi; }

system-deps: browser dicom3tools postgres

test: setup system-deps
	RAY_AUTH_MODE=disabled $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check ich_ray tests bench pipelines

clean-demo:
	rm -rf demo-data
