#!/usr/bin/env bash
# Run the end-to-end tests against a real Label Studio.
#
#   scripts/run-e2e.sh [extra pytest args]
#
# Installs what they need first (both steps are idempotent and cached):
# Label Studio in its own venv, and headless Chromium for the screenshot.
# Runs with the service's venv (.venv, made by `make install`) unless PYTHON
# names another interpreter. Artifacts (logs, screenshot, timings.json,
# what Label Studio sent the service) land in artifacts/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
bash scripts/install-test-tools.sh
bash scripts/install-label-studio.sh
exec "$PYTHON" -m pytest -m e2e tests/e2e -p no:cacheprovider -rs "$@"
