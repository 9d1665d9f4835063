#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver for the headless-browser tests
# (tests/browser.py; the web app's tests drive it with Selenium through chromedriver).
# Idempotent and quiet: does nothing when both are already there.
# Never downloads a browser build of its own: Debian's package only.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-chromium: not root and no sudo; the browser tests will be skipped" >&2
        exit 0
    fi
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver; } >"$log" 2>&1; then
    echo "install-chromium: apt-get failed:" >&2
    tail -n 20 "$log" >&2
    exit 1
fi
echo "install-chromium: $(/usr/bin/chromium --version 2>/dev/null || echo installed)"
