"""Every error a user can cause is an :class:`EgoindexError`.

Why one root: the command line catches ``EgoindexError`` once, prints its message (which says
what to do) without a traceback and exits 2; anything else is a bug and keeps its traceback.
Each subclass is also the built-in it behaves as (lancedb's ``MissingColumnError(KeyError)``
pattern), so ``except ValueError`` in a caller's code keeps working: an invalid annotation file
is an ``AnnotationError``, which is a ``ValueError``.

This module imports nothing of egoindex, so every layer may raise these.
"""

from __future__ import annotations


class EgoindexError(Exception):
    """Root of the errors a user can cause (bad input, a missing file, a refused option)."""


class ConfigError(EgoindexError, ValueError):
    """An option or a combination of options that cannot work (the message names the option)."""


class MediaError(EgoindexError, ValueError):
    """A media file that cannot be read as asked."""


class VideoError(MediaError):
    """A video that cannot be used; ``kind`` is a short machine-readable reason that ingest records."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class DatasetError(EgoindexError, ValueError):
    """A SHARDS_DIR that is missing, damaged or written with another ingest configuration."""


class IngestError(EgoindexError, ValueError):
    """An ingest that cannot start or continue as asked."""


class ModelError(EgoindexError, ValueError):
    """A model name, checkpoint or pretrained tag that cannot be loaded (offline: point at a local file)."""


class TrainError(EgoindexError, ValueError):
    """A training run that cannot start or resume as asked."""


class ReportError(TrainError):
    """A training reporter (``--report-to``) that is not available."""


class BuildError(EgoindexError, ValueError):
    """A build that cannot start or continue as asked (another model in the store, no shards ...)."""


class StoreError(EgoindexError, ValueError):
    """A store that cannot be used as asked (missing, empty, built with another model ...)."""


class FilterError(StoreError):
    """A search filter that is invalid (unknown level, bad time range, bad ``--like``)."""


class BenchError(EgoindexError, ValueError):
    """A benchmark that cannot run as asked (no such split, annotations that do not match the store)."""


class AnnotationError(EgoindexError, ValueError):
    """An annotation file (EgoMCQ, EPIC MIR, Ego4D NLQ/MQ) that does not follow its format."""


class ExportError(EgoindexError, ValueError):
    """A feature export that cannot run as asked."""


class ClassifyError(EgoindexError, ValueError):
    """A classification or probe that cannot run as asked (bad labels, too few videos per class)."""


class ServeError(EgoindexError, ValueError):
    """A server setting that is refused (e.g. a non-loopback bind without the explicit option)."""


class AccessError(ServeError):
    """A users file, user or scope that cannot be used as asked (``egoindex users``, ``serve`` with login)."""


class RedactionError(EgoindexError, ValueError):
    """A redaction that cannot run as asked (an unknown video, a bad blackout list, one in progress)."""
