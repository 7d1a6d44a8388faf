#!/usr/bin/env bash
# Set up, index the sample articles and serve the chat page.
#   bash scripts/start.sh [FOLDER...]   (default: examples/articles)
# Environment: QA_INDEX (index directory, default index/), QA_HOST, QA_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
QA_SKIP_BROWSER=1 bash scripts/setup.sh
. .venv/bin/activate
index=${QA_INDEX:-index}
if [ "$#" -eq 0 ]; then set -- examples/articles; fi
qa index "$@" --index "$index"
exec qa serve --index "$index" --host "${QA_HOST:-127.0.0.1}" --port "${QA_PORT:-8000}"
