# make run   start mitmdump with the addon on 127.0.0.1:8080 (sets everything up first)
# make test  run the test suite (sets everything up first)
# make lint  ruff check and ruff format --check
# make bench measure the addon's cost (needs wrk and nginx; installs them with apt-get as root)
#
# PYTHON=/path/to/python3.x  choose the interpreter (default: the newest Python >= 3.11 found)
# MITMPROXY='mitmproxy>=11,<12'  choose the mitmproxy release (default: the newest that PYTHON runs)
# VENV=.venv-x               where the virtualenv lives (one per PYTHON/MITMPROXY pair)
# PORT=8080 ARGS='--mode reverse:http://localhost:8000'  for make run
# make browser  a browser through the proxy of make run: PORT, URL=http://localhost:3000,
#               BROWSER=firefox (or a name or path; default the first Chrome-family browser found),
#               CONFDIR=~/.mitmproxy (where mitmproxy's CA is, created first if missing)
# make allow HOST=api.example.com  add a rule for HOST to rules.toml (cors.allow, for mitmdump): ORIGINS='...',
#               CREDENTIALS=1 (allow_credentials = true), RULES=path (default rules.toml)

PYTHON ?= $(shell tools/find-python 3.11+)
MITMPROXY ?= mitmproxy>=11,<13
VENV ?= .venv
PORT ?= 8080
ARGS ?=
URL ?=
CONFDIR ?= ~/.mitmproxy
# BROWSER from the command line only: many systems export BROWSER (xdg-open, wslview) for other tools.
BROWSER_CHOICE = $(if $(filter command line,$(origin BROWSER)),$(BROWSER))
# The test and lint tools: pyproject.toml's optional dependencies, installed with mitmproxy in one
# resolve, so they cannot upgrade what mitmproxy pins (h11).
DEV_DEPS = import tomllib; extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]; \
	print("\n".join(r for group in ("test", "lint") for r in extras[group]))

NODE_DEPS = .cache/roundtrip/.installed

.PHONY: run browser allow test lint bench screenshot clean

$(VENV)/bin/python:
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.11 found; pass PYTHON=/path/to/python3.12" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip

$(VENV)/.run-deps: $(VENV)/bin/python Makefile
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$(MITMPROXY)"
	@touch $@

$(VENV)/.test-deps: $(VENV)/.run-deps pyproject.toml $(NODE_DEPS)
	$(VENV)/bin/python -c '$(DEV_DEPS)' | \
		xargs $(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$(MITMPROXY)"
	@touch $@

# Express 5 and cors 2.8 for the round-trip test of the generated Express configuration (needs npm).
$(NODE_DEPS): Makefile
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --prefix .cache/roundtrip express@5 cors@2.8 && touch $@; \
	else echo "make: npm not found: the Express round-trip test will be skipped (CI installs it)"; fi

run: $(VENV)/.run-deps
	$(VENV)/bin/mitmdump -s cors_addon.py --listen-host 127.0.0.1 --listen-port $(PORT) \
		--set connection_strategy=lazy $(ARGS)

browser: $(VENV)/.run-deps
	@$(VENV)/bin/python -m corsaddon.browser --port '$(PORT)' --confdir '$(CONFDIR)' --browser '$(BROWSER_CHOICE)' '$(URL)'

allow: $(VENV)/.run-deps
	@test -n "$(HOST)" || { echo "make allow: which host? make allow HOST=api.example.com" >&2; exit 2; }
	@$(VENV)/bin/python -m corsaddon.discovery $(if $(RULES),--rules '$(RULES)') $(if $(CREDENTIALS),--credentials) \
		'$(HOST)' $(ORIGINS)

test: $(VENV)/.test-deps
	@$(VENV)/bin/mitmdump --version | head -2
	$(VENV)/bin/python -m pytest

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.test-deps
	tools/apt-install-missing wrk:wrk nginx:nginx-light
	$(VENV)/bin/python -m bench

# docs/mitmweb-flows.png, retaken with mitmweb 12 in headless Chromium (needs an emoji font)
screenshot: $(VENV)/.test-deps
	tools/apt-install-missing chromium:chromium fc-list:fontconfig
	@fc-list | grep -qi emoji || tools/apt-install-missing emoji-font:fonts-noto-color-emoji
	$(VENV)/bin/python tools/screenshot_mitmweb.py

clean:
	rm -rf .venv .venv-* .pytest_cache .hypothesis .cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
