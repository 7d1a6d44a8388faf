#!/usr/bin/env bash
# Set up, index the sample articles and serve the chat page.
#   bash scripts/start.sh [FOLDER...]   (default: examples/articles)
# Environment: QA_INDEX (index directory, default index/), QA_HOST (default 127.0.0.1),
# QA_PORT (default 8000): QA_PORT=8001 bash scripts/start.sh serves on port 8001.
set -euo pipefail
cd "$(dirname "$0")/.."
QA_SKIP_BROWSER=1 bash scripts/setup.sh
. .venv/bin/activate
index=${QA_INDEX:-index}
if [ "$#" -eq 0 ]; then set -- examples/articles; fi
qa index "$@" --index "$index"
exec qa serve --index "$index"   # reads QA_HOST and QA_PORT itself, and names QA_PORT if the port is taken
