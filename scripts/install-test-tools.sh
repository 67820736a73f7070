#!/usr/bin/env bash
# Install the system tools the tests use: the DejaVu fonts the made sign photos
# are drawn with (tests/support/signs.py), and for the e2e tests headless
# Chromium and its chromedriver (Debian packages). Idempotent; only tries
# apt-get as root. Never fails the build: the screenshot test skips with a
# reason instead, and signs.py falls back to Pillow's own font.
set -uo pipefail

if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf ] && [ "$(id -u)" = 0 ]; then
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core fonts-dejavu-extra; } ||
        echo "install-test-tools: apt-get install fonts-dejavu-extra failed" >&2
fi

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    echo "chromium and chromedriver already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-test-tools: not root, cannot apt-get install chromium chromium-driver" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core; } ||
    echo "install-test-tools: apt-get install chromium chromium-driver failed" >&2
exit 0
