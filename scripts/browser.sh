#!/usr/bin/env bash
# Install Debian's Chromium for the headless browser tests of `egoindex serve` (tests/e2e/test_serve_browser.py).
# Playwright drives it through executable_path; its own browser download is never used (it needs
# a CDN that CI cannot reach). Skipped when chromium is already there; needs root (CI runs as root).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: chromium is missing and cannot be installed here (needs root + apt-get);" \
       "the browser tests will be skipped with that reason" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
