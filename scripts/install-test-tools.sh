#!/usr/bin/env bash
# Install the system tools the tests use: the DejaVu fonts the made sign photos
# are drawn with (tests/support/signs.py), the 14-segment font (fonts-dseg) the
# training tests draw meter displays with, and for the e2e tests headless
# Chromium and its chromedriver (Debian packages). Idempotent; only tries
# apt-get as root. Never fails the build: a test without its tool skips with a
# reason instead, and signs.py falls back to Pillow's own font.
set -uo pipefail

packages=()
if ! [ -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf ]; then
    packages+=(fonts-dejavu-core fonts-dejavu-extra)
fi
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
    packages+=(chromium chromium-driver fonts-dejavu-core)
fi
if ! [ -f /usr/share/fonts/truetype/dseg/DSEG14Classic-Regular.ttf ]; then
    packages+=(fonts-dseg)
fi
if [ ${#packages[@]} = 0 ]; then
    echo "DejaVu fonts, chromium, chromedriver and fonts-dseg already installed"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-test-tools: not root, cannot apt-get install ${packages[*]}" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}"; } ||
    echo "install-test-tools: apt-get install ${packages[*]} failed" >&2
exit 0
