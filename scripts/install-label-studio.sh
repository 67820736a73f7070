#!/usr/bin/env bash
# Install Label Studio into its own cached virtual environment, apart from the
# service's (it pins its own versions of many packages), and apply its
# migrations once to an empty database kept in that venv, which each e2e
# session starts on a copy of (tests/e2e/labelstudio.py): `label-studio start`
# on a new data dir otherwise spends a minute or two of CPU migrating first.
#
# Idempotent: does nothing when the venv's label-studio already runs and the
# migrated database is there.
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

# The migrated database (tests/e2e/labelstudio.py MIGRATED_DATABASE). Not having it
# only makes the first e2e start slower: Label Studio migrates a new database itself.
TEMPLATE="$VENV/ocr-backend-e2e-migrated.sqlite3"
migrate() {
    [ -f "$TEMPLATE" ] && return 0
    local scratch manage
    scratch="$(mktemp -d "$VENV/migrate.XXXXXX")"
    manage="$("$VENV/bin/python" -c 'import label_studio, os; print(os.path.join(os.path.dirname(label_studio.__file__), "manage.py"))')"
    # Label Studio's own migrate, in a scratch data dir, none of this shell's LABEL_STUDIO_*
    # settings, nothing sent anywhere (the proxy is a closed port on loopback). The same
    # environment as tests/e2e/labelstudio.py label_studio_environment (QUIET_ENV and
    # tests/support/processes.py LOOPBACK_ONLY_ENV): change both together.
    if (cd "$scratch" && env -u HOST -u PORT $(env | sed -n 's/^\(\(LABEL_STUDIO\|HEARTEX\)_[^=]*\)=.*/-u \1/p') \
        LABEL_STUDIO_BASE_DATA_DIR="$scratch" SENTRY_DSN= FRONTEND_SENTRY_DSN= \
        COLLECT_ANALYTICS=false LATEST_VERSION_CHECK=false \
        HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 ALL_PROXY=http://127.0.0.1:9 \
        http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 all_proxy=http://127.0.0.1:9 \
        NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost \
        "$VENV/bin/python" "$manage" migrate --no-color -v 0) >>"$VENV.migrate.log" 2>&1 &&
        [ -f "$scratch/label_studio.sqlite3" ]; then
        mv "$scratch/label_studio.sqlite3" "$TEMPLATE" # atomic: a reader sees all or none
        echo "label-studio $LS_VERSION: migrated database made ($TEMPLATE)"
    else
        echo "install-label-studio: migrating a database failed (see $VENV.migrate.log)" >&2
    fi
    rm -rf "$scratch"
}

if works; then
    echo "label-studio $LS_VERSION already installed in $VENV"
    rm -f "$FAILED"
    migrate
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
migrate
