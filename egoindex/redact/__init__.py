"""``egoindex redact``: remove ranges of videos from a SHARDS_DIR and its STORE, for good (see ``run``)."""
