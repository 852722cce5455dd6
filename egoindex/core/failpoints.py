"""Named crash points for fault-injection tests.

Set ``EGOINDEX_FAILPOINT=NAME:N`` and the process kills itself with SIGKILL (no clean-up, no
``finally`` blocks: exactly what an OOM killer or ``scancel`` does) the N-th time it reaches the
point ``NAME``. Unset, ``hit`` is a dictionary lookup. Points: ``video-done`` (after a video's
record is written), ``shard-done`` (after a packed shard is published), ``clip-shard-done`` (after a clip shard is published), ``build-shard-done``
(after a shard's frame embeddings are written), ``build-frames-committed``, ``build-derived-done``
(after a bucket of clips/utterances is written), ``build-index-done`` (after a FAISS index),
``finetune-saved`` (after ``egoindex finetune`` writes ``last.pt``), ``train-saved`` (after
``egoindex train`` writes ``latest.pt``, before that step's validation), ``redact-before-mark`` (a
redaction step done, not yet marked in its journal), ``redact-step-done`` (marked) and
``redact-table-deleted`` (a store table's rows deleted, not yet compacted).
"""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def hit(name: str) -> None:
    spec = os.environ.get("EGOINDEX_FAILPOINT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
