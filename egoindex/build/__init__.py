"""Stage 3: a checkpoint + SHARDS_DIR -> STORE.

``config`` (BuildConfig, BuildSummary, the ``_build/`` state paths), ``frames`` (stage 1: embed the
shards' frames), ``derived`` (clips, utterances, videos), ``run`` (orchestration: resume checks,
ranks, commit order). STORE itself is written through :mod:`egoindex.store.writer`.
"""
