# OpenNSPS — everything installs itself: uv is bootstrapped from PyPI, dependencies come
# from the committed uv.lock. Nothing needs to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
CONFIG ?= opennsps.example.yaml
# The example's secrets are change-me placeholders: serve refuses them unless told.
SERVE_FLAGS ?= $(if $(filter opennsps.example.yaml,$(CONFIG)),--insecure-defaults,)
# Debian packages the tests use: openssl, to make the TLS tests' certificates; Perl's TLS
# client, for the ESPF guide's Perl sample calls, and the modules of its sample application
# (Plack, Const::Fast, Cpanel::JSON::XS, Cache::LRU, HTTP::Status), for a Perl application
# written like it;
# FreeRADIUS and radclient, for the RADIUS connector's tests against a real server;
# Chromium, for the console's browser tests (Playwright drives it; no browser download);
# redis-server, which the real PyHSS needs (each test run starts a private one);
# prometheus, for promtool: it checks the alert rules in deploy/ and the /metrics output;
# docker-compose (which validates a compose file without a Docker engine) and systemd
# (systemd-analyze verify), for the deployment files in deploy/.
DEBIAN_PACKAGES := openssl libio-socket-ssl-perl libplack-perl libconst-fast-perl libcpanel-json-xs-perl \
  libcache-lru-perl libhttp-message-perl freeradius freeradius-utils chromium chromium-driver redis-server \
  prometheus docker-compose systemd

.PHONY: run serve test test-fast lint typecheck bench clean debian-packages screenshots

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --extra otel --python $(PYTHON) --quiet
	touch $@

## run: the demo — PortaBilling sandbox → OpenNSPS (SQLite) → HSS, with a live lifecycle
## and a reconciliation report; keeps serving until Ctrl-C (make run ARGS=--once exits)
run: $(VENV)/.synced
	$(VENV)/bin/opennsps demo $(ARGS)

## serve: only the gateway, with $(CONFIG) (SQLite at ./var/opennsps.db by default)
serve: $(VENV)/.synced
	$(VENV)/bin/opennsps serve --config $(CONFIG) $(SERVE_FLAGS)

## test: lint, type-check and run every test (SQLite and PostgreSQL)
test: $(VENV)/.synced lint typecheck debian-packages
	$(VENV)/bin/python -m tools.ensure_postgres
	$(VENV)/bin/pytest -q --durations=30  # the slowest tests, to keep the suite's time in view

## test-fast: the inner-loop subset: SQLite only, without the tests marked slow (real
## PyHSS and FreeRADIUS, fuzzing, subprocesses); stops at the first failure
test-fast: $(VENV)/.synced
	$(VENV)/bin/pytest -q -x -m "not slow and not postgres"

## screenshots: refresh the console screenshots in docs/images (from its browser test)
screenshots: $(VENV)/.synced debian-packages
	CONSOLE_SCREENSHOTS=docs/images $(VENV)/bin/pytest -q tests/console/test_console_browser.py

debian-packages:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools

typecheck: $(VENV)/.synced
	$(VENV)/bin/mypy src

## bench: run every benchmark and print a summary table (results in bench/results/)
bench: $(VENV)/.synced
	$(VENV)/bin/python -m tools.ensure_postgres
	$(VENV)/bin/python -m bench

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
