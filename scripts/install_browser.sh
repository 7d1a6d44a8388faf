#!/usr/bin/env bash
# Chromium for the browser tests, installed only with consent.
#
# The browser tests (tests/test_browser.py) drive Debian's /usr/bin/chromium with
# Playwright, which never downloads a browser of its own. Installing it changes the
# system (apt-get, as root: chromium, chromium-driver and fonts-noto-cjk, the CJK
# fonts the page's screenshots need), so this script does it only when asked:
#   QA_INSTALL_BROWSER=1   install it (e.g. QA_INSTALL_BROWSER=1 bash scripts/test.sh)
#   CI set (any value but 0/false), as CI services do: install it
#   QA_SKIP_BROWSER=1      never install it (scripts/start.sh sets this)
# Otherwise it says how to enable the browser tests, which then skip.
# QA_CHROMIUM names the browser to look for (default /usr/bin/chromium).
set -euo pipefail

chromium=${QA_CHROMIUM:-/usr/bin/chromium}
packages="chromium chromium-driver fonts-noto-cjk"

[ "${QA_SKIP_BROWSER:-0}" = 1 ] && exit 0
[ -x "$chromium" ] && exit 0

consent=no
case "${QA_INSTALL_BROWSER:-0}" in 1|yes|true) consent=yes ;; esac
case "${CI:-}" in ""|0|false|False|FALSE) ;; *) consent=yes ;; esac

if [ "$consent" != yes ]; then
    echo "setup: $chromium is missing, so the browser tests will be skipped. To run them, let setup"
    echo "setup: install Debian's $packages (system packages, as root):"
    echo "setup:     QA_INSTALL_BROWSER=1 bash scripts/test.sh"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "setup: $chromium is missing and cannot be installed here (needs apt-get, as root):"
    echo "setup:     sudo apt-get install $packages   (the browser tests skip until then)"
    exit 0
fi
echo "setup: installing Debian's $packages for the browser tests (QA_INSTALL_BROWSER=1 or CI asked for it)"
apt-get update -qq
# shellcheck disable=SC2086  # the package names are meant to split
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
