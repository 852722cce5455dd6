"""Stage 3: a checkpoint + SHARDS_DIR -> STORE."""
