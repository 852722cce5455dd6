"""Pipeline stages (ingest, training) that the ``egoindex`` CLI runs; also runnable as ``python -m pipelines.X``."""
