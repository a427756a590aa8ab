# popbridge: every target sets itself up on a fresh Debian/Ubuntu machine.
#   make demo   run the bridge on its embedded demo (no Dovecot, no network, no config)
#   make test   the whole test suite, against a real Dovecot (installed here when run as root)
#   make lint   ruff + mypy --strict
#   make bench  the benchmark (figures side by side with baselines measured in the same run)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
# Exact dependency versions (constraints.txt), also for the build backend pip runs in isolation.
PIP_INSTALL := PIP_CONSTRAINT="$(CURDIR)/constraints.txt" $(PY) -m pip install -q
APT_GET := DEBIAN_FRONTEND=noninteractive apt-get
PYTEST_ARGS ?=

.PHONY: all demo test lint format bench test-deps venv clean schemas constraints test-image

all: test

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "popbridge needs Python >= 3.11 (found $$($(PYTHON) --version 2>&1)); set PYTHON=python3.11 or newer" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			$(APT_GET) update -qq && $(APT_GET) install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
		else echo "Cannot create a virtual environment: install python3-venv (apt-get install python3-venv)" >&2; exit 1; fi; }
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) -e '.[test,lint]'
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

SERVERS_DIR ?= /var/cache/popbridge/servers

# System packages the tests need: Dovecot (the real POP3 server), promtool (alert rule tests),
# docker.io and debootstrap (the container image, built FROM a locally made Debian base), then
# GNU mailutils pop3d and Courier POP3, unpacked beside Dovecot (tests/install-pop3-servers.sh).
test-deps:
	@missing=""; \
	[ -x /usr/sbin/dovecot ] && [ -e /usr/lib/dovecot/pop3 ] || missing="$$missing dovecot-pop3d"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "installing:$$missing"; \
			$(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends $$missing; \
		else \
			echo "make test needs these Debian packages:$$missing" >&2; \
			echo "install them with: sudo apt-get install$$missing   (or run make test as root)" >&2; \
			exit 1; \
		fi; \
	fi
	@sh tests/install-pop3-servers.sh $(SERVERS_DIR)

demo: $(STAMP)
	$(VENV)/bin/popbridge demo

# POPBRIDGE_START_DOCKERD=1: the image tests start a Docker engine if none runs (as root).
test: $(STAMP) test-deps
	POPBRIDGE_START_DOCKERD=1 POPBRIDGE_SERVERS_DIR=$(SERVERS_DIR) $(PY) -m pytest $(PYTEST_ARGS)

# Only the container image tests (tests/integration/test_image.py; make test runs them too):
# starts dockerd if none runs, builds a local Debian base with debootstrap (no registry is
# needed) and the image from constraints.txt. About 4 minutes the first time.
test-image: $(STAMP) test-deps
	POPBRIDGE_START_DOCKERD=1 $(PY) -m pytest -m docker -rs $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check bridge tests bench deploy
	$(VENV)/bin/ruff format --check bridge tests bench deploy
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format bridge tests bench deploy
	$(VENV)/bin/ruff check --fix bridge tests bench deploy

bench: $(STAMP) test-deps
	@command -v fetchmail >/dev/null && [ -x /usr/bin/time ] || { \
		if [ "$$(id -u)" = 0 ]; then $(APT_GET) update -qq && $(APT_GET) install -y -qq fetchmail curl time; \
		else echo "make bench needs: sudo apt-get install fetchmail curl time" >&2; exit 1; fi; }
	$(PY) -m bench.run

# The published payload schemas (docs/schema/): regenerate after changing bridge/mime/model.py.
schemas: $(STAMP)
	$(VENV)/bin/popbridge schema payload > docs/schema/payload.schema.json
	$(VENV)/bin/popbridge schema payload-strict > docs/schema/payload.strict.schema.json

# Re-pin constraints.txt to the newest versions pyproject.toml allows (after changing
# dependencies there), resolved in a fresh virtual environment; review the diff.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/pip install -q --upgrade pip setuptools wheel
	.venv-constraints/bin/pip install -q '.[test,lint]'
	{ sed -n '1,5p' constraints.txt; \
	  .venv-constraints/bin/pip freeze --all --exclude popbridge | sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints build

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
