"""SHARDS_DIR: the WebDataset shards ingest writes and training and the build read."""
