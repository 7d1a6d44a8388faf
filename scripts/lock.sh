#!/usr/bin/env bash
# Refresh requirements.lock: every package qa, its tests, the ONNX path, the
# evaluation and the Ray cluster path (tests/test_cluster.py runs a local Ray)
# need, at exact versions, resolved from pyproject.toml by pip-tools.
# Run it after changing a dependency in pyproject.toml, then run the tests and
# commit both files. setup.sh (and so CI) installs from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
python -m pip install -q pip-tools
pip-compile -q --extra test --extra onnx --extra eval --extra cluster --strip-extras --allow-unsafe \
    --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml
# torch comes from the local CPU wheel (2.13.0+cpu); pin the public version so that
# pip accepts that wheel and never reaches for a CUDA build.
sed -i 's/^torch==\(.*\)+cpu$/torch==\1/' requirements.lock
echo "requirements.lock refreshed: $(grep -c '==' requirements.lock) pinned packages"
