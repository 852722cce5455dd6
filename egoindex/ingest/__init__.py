"""Stage 1: a folder of videos -> SHARDS_DIR."""
