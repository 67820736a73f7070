# Set-up is part of every target: a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: install run test test-fast lint

$(INSTALLED): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

install: $(INSTALLED)

run: install
	$(VENV)/bin/ocr-backend

# The end-to-end tests need Label Studio (its own venv and a migrated database, cached
# under ~/.cache/ocr-backend) and headless Chromium (Debian packages, installed when run
# as root). Label Studio installs beside the service's venv: on a fresh machine the two
# take minutes each, waiting mostly on downloads and disks.
test:
	bash scripts/install-label-studio.sh & label_studio=$$!; \
	    $(MAKE) install && bash scripts/install-test-tools.sh; status=$$?; \
	    wait $$label_studio; exit $$status
	$(MAKE) lint
	$(VENV)/bin/python -m pytest

# The quick loop while coding (under a minute): no Label Studio, no browser, no service
# processes (the tests marked `slow` or `e2e`). `make test` runs them all.
test-fast: install
	$(VENV)/bin/python -m pytest -q -m "not slow and not e2e"

# Style, format and types: part of `make test`.
lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
