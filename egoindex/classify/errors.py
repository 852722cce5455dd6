"""The one exception type of :mod:`egoindex.classify`.

Why a ``ValueError`` subclass: every failure here is about an input the caller chose (labels, a
video, a head file, a dataset folder), so code that already treats bad input as ``ValueError``
(the server turns it into HTTP 400) handles it without importing this module.
"""

from __future__ import annotations


class ClassifyError(ValueError):
    """A classification or probe request that cannot be served as asked; the message says why."""
