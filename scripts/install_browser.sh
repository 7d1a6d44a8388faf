#!/usr/bin/env bash
# What the browser tests need: Chromium (installed only with consent) and axe-core.
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
#
# Where Chromium is, it also installs axe-core, the accessibility checker the tests
# inject into the page, from the npm registry into tests/axe/node_modules (inside the
# project, like .venv): `npm ci`, the exact version tests/axe/package-lock.json pins.
# npm comes with Node.js; where it is missing, consent installs Debian's npm, and
# otherwise the accessibility tests skip, saying how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."

chromium=${QA_CHROMIUM:-/usr/bin/chromium}
packages="chromium chromium-driver fonts-noto-cjk"
axe_dir=tests/axe
axe_stamp=$axe_dir/node_modules/.qa-installed

[ "${QA_SKIP_BROWSER:-0}" = 1 ] && exit 0

consent=no
case "${QA_INSTALL_BROWSER:-0}" in 1|yes|true) consent=yes ;; esac
case "${CI:-}" in ""|0|false|False|FALSE) ;; *) consent=yes ;; esac

can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }

install_chromium() {
    [ -x "$chromium" ] && return 0
    if [ "$consent" != yes ]; then
        echo "setup: $chromium is missing, so the browser tests will be skipped. To run them, let setup"
        echo "setup: install Debian's $packages (system packages, as root):"
        echo "setup:     QA_INSTALL_BROWSER=1 bash scripts/test.sh"
        return 1
    fi
    if ! can_apt; then
        echo "setup: $chromium is missing and cannot be installed here (needs apt-get, as root):"
        echo "setup:     sudo apt-get install $packages   (the browser tests skip until then)"
        return 1
    fi
    echo "setup: installing Debian's $packages for the browser tests (QA_INSTALL_BROWSER=1 or CI asked for it)"
    apt-get update -qq
    # shellcheck disable=SC2086  # the package names are meant to split
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
}

install_axe() {
    # up to date: installed after the lock last changed
    [ -f "$axe_stamp" ] && [ ! "$axe_dir/package-lock.json" -nt "$axe_stamp" ] && return 0
    if ! command -v npm >/dev/null 2>&1; then
        if [ "$consent" = yes ] && can_apt; then
            echo "setup: installing Debian's npm for axe-core (the page's accessibility check)"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
        else
            echo "setup: npm is missing, so the page's accessibility tests will be skipped. Install Node.js"
            echo "setup: and npm (e.g. sudo apt-get install npm), then run: bash scripts/install_browser.sh"
            return 0
        fi
    fi
    echo "setup: installing axe-core into $axe_dir/node_modules (npm ci, the version $axe_dir/package-lock.json pins)"
    npm ci --prefix "$axe_dir" --no-audit --no-fund --loglevel=error >/dev/null
    touch "$axe_stamp"
}

install_chromium || exit 0  # no browser: the browser tests skip (said above), axe-core is not needed
[ -x "$chromium" ] || exit 0
install_axe
