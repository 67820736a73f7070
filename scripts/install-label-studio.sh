#!/usr/bin/env bash
# Install Label Studio into its own cached virtual environment, apart from the
# service's (it pins its own versions of many packages).
#
# Idempotent: does nothing when the venv's label-studio already runs.
# Never fails the build: on failure it writes the reason to "<venv>.failed"
# and exits 0, so the e2e tests skip with that reason instead of silently.
set -uo pipefail

LS_VERSION="${LABEL_STUDIO_VERSION:-1.23.2}"
CACHE="${OCR_BACKEND_CACHE:-$HOME/.cache/ocr-backend}"
VENV="$CACHE/label-studio-$LS_VERSION"
FAILED="$VENV.failed"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

mkdir -p "$CACHE"

works() {
    [ -x "$VENV/bin/label-studio" ] &&
        "$VENV/bin/python" -c "import label_studio, sys; sys.exit(label_studio.__version__ != '$LS_VERSION')" \
            >/dev/null 2>&1
}

if works; then
    echo "label-studio $LS_VERSION already installed in $VENV"
    rm -f "$FAILED"
    exit 0
fi

fail() {
    echo "install-label-studio: $1" >&2
    printf '%s\n' "$1" >"$FAILED"
    exit 0
}

LOG="$CACHE/label-studio-$LS_VERSION.install.log"
echo "installing label-studio $LS_VERSION into $VENV (log: $LOG)"
rm -rf "$VENV" "$FAILED"
"$PYTHON" -m venv "$VENV" >"$LOG" 2>&1 ||
    fail "could not create a virtual environment with $PYTHON (see $LOG)"
"$VENV/bin/pip" install --disable-pip-version-check --quiet \
    "label-studio==$LS_VERSION" >>"$LOG" 2>&1 ||
    fail "pip install label-studio==$LS_VERSION failed: $(tail -n 3 "$LOG" | tr '\n' ' ')"
works || fail "label-studio $LS_VERSION installed in $VENV but does not import (see $LOG)"
echo "label-studio $LS_VERSION installed in $VENV"
