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

# The end-to-end tests need Label Studio (its own venv, cached under ~/.cache/ocr-backend)
# and headless Chromium (Debian packages, installed when run as root).
test: install
	bash scripts/install-test-tools.sh
	bash scripts/install-label-studio.sh
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/python -m pytest

# Without the slow tests (a real Ray cluster) and the end-to-end ones.
test-fast: install
	$(VENV)/bin/python -m pytest -m "not slow and not e2e"

lint: install
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
