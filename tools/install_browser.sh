#!/bin/sh
# Install Debian's Chromium for the HTML report's browser test (tests/integration/test_report_browser.py),
# only if it is missing. Safe to run on every `make test`: when Chromium is there it does nothing.
set -eu

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: $CHROMIUM is missing and apt-get is not available; install Chromium so that $CHROMIUM exists" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install_browser: installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y chromium

if [ ! -x /usr/bin/chromium ]; then
    echo "install_browser: apt-get finished but /usr/bin/chromium is still missing" >&2
    exit 1
fi
