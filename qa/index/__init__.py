"""The on-disk index: a catalog updated in place plus immutable segments.

An index is a folder::

    index/
      manifest.json        what it is: format, model, dimension, ANN kind, counts, segments
      store.sqlite         the catalog (qa.index.catalog): articles, chunks, files, segments, tombstones
      segments/s000001/    immutable segment files (qa.index.segment): vectors, postings, columns
      pending-embeddings.sqlite   vectors of an unfinished step (only while a run is unfinished)

One job per module:

==================  ===========================================================
``files``           atomic writes, fsync, the update lock
``manifest``        format versions, the manifest, model checks
``catalog``         the SQLite catalog
``segment``         segment files: vectors, postings, filter columns
``ann``             vector search in a segment (exact, HNSW, IVF)
``bm25``            BM25 with global statistics over segment postings
``filters``         the date rule, filter plans and masks
``models``          the index's model, loaded lazily (ONNX for queries)
``reader``          :class:`Index`: an open version, search, reload
``writer``          :class:`Writer`: committed steps, vector reuse, resume
``merge``           the merge policy and merges
``sync``            folders -> index, reading only changed files
``upgrade``         format 1 -> 2, in place
==================  ===========================================================
"""

from qa.index.ann import ANN_KINDS, AnnParams
from qa.index.manifest import FORMAT_VERSION, MANIFEST, read_manifest
from qa.index.models import embedder_for
from qa.index.reader import MAX_K, MAX_QUESTION_CHARS, MODES, Index, IndexStats, check_question
from qa.index.sync import sync_folders
from qa.index.writer import UpdateReport, Writer, update_articles

__all__ = [
    "ANN_KINDS", "AnnParams", "FORMAT_VERSION", "MANIFEST", "MAX_K", "MAX_QUESTION_CHARS", "MODES",
    "Index", "IndexStats", "UpdateReport", "Writer", "check_question", "embedder_for", "read_manifest",
    "sync_folders", "update_articles",
]
