"""Stage 2: SHARDS_DIR -> a trained checkpoint (``torchrun -m egoindex.train``)."""
