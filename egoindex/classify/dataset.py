"""A folder-per-class video dataset: ``DATASET/<class>/**/<video>.<mp4|mov|mkv|webm|...>``.

The layout's reader lives in :mod:`egoindex.media.labelled` (with UCF101's split files and the
train/val/test rule), shared with ``egoindex finetune``; this module keeps the names the probe
and its callers import.
"""

from __future__ import annotations

from egoindex.media.discover import VIDEO_EXTENSIONS
from egoindex.media.labelled import MIN_PER_CLASS, LabelledVideo, scan_dataset

__all__ = ["VIDEO_EXTENSIONS", "MIN_PER_CLASS", "LabelledVideo", "scan_dataset"]
