"""A trained linear classifier over a store model's video features, saved without pickle.

Why not pickle (joblib / sklearn's own dump): loading a pickle runs arbitrary code, and heads are
meant to be shared. A head is two files next to each other:

* ``head.npz``: ``weights`` float32 [C, D], ``bias`` float32 [C], ``classes`` unicode [C],
  read with ``np.load(allow_pickle=False)`` (no object arrays, so no code can run);
* ``head.json``: what the features were: ``model``, ``checkpoint_sha256``, ``embed_dim``,
  ``pooling``, ``fps``, ``clip_seconds``, ``clip_stride`` and the classes again.

A head only means something on features of the model and checkpoint it was trained on, so
:meth:`LinearHead.check_store` refuses any other store. Probabilities are
``softmax(weights @ x + bias)`` on the L2-normalised feature ``x``; a binary sklearn model
(one weight row) is stored as two rows ``[-w/2, w/2]`` with biases ``[-b/2, b/2]``, whose softmax
is exactly sklearn's sigmoid.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.version import __version__
from egoindex.errors import ClassifyError
from egoindex.classify.zero_shot import softmax
from egoindex.core.fsutil import atomic_open, write_json

__all__ = ["HEAD_FORMAT", "POOLING", "LinearHead", "load_head"]

HEAD_FORMAT = "egoindex-linear-head"
HEAD_VERSION = 1
#: How a video becomes one vector (see egoindex.classify.video_features).
POOLING = "mean of clip vectors (each the L2-normalised mean of its frames), L2-normalised"


@dataclass
class LinearHead:
    classes: list[str]
    weights: np.ndarray  # [C, D]
    bias: np.ndarray  # [C]
    model: str
    checkpoint_sha256: str
    fps: float
    clip_seconds: float
    clip_stride: float
    pooling: str = POOLING
    extra: dict[str, Any] = field(default_factory=dict)  # training facts (C, counts ...), informative only

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, np.float32)
        self.bias = np.asarray(self.bias, np.float32).reshape(-1)
        if self.weights.ndim != 2 or self.weights.shape[0] != len(self.classes) or self.bias.shape[0] != len(self.classes):
            raise ClassifyError(f"head shapes disagree: weights {self.weights.shape}, bias {self.bias.shape}, "
                                f"{len(self.classes)} classes")

    @classmethod
    def from_sklearn(cls, clf: Any, names: Sequence[str] | None = None, **kw: Any) -> LinearHead:
        """From a fitted ``LogisticRegression`` (multinomial or binary); ``names`` maps integer
        targets to class names (default: the targets as text)."""
        w = np.asarray(clf.coef_, np.float64)
        b = np.asarray(clf.intercept_, np.float64)
        if w.shape[0] == 1:  # binary: sigmoid(z) == softmax([-z/2, z/2])[1]
            w, b = np.vstack([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
        classes = [str(names[int(c)]) if names is not None else str(c) for c in clf.classes_]
        return cls(classes, w, b, **kw)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def probs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [N, C] for features [N, D] (or [D] -> [C])."""
        x = np.asarray(x, np.float64)
        one = x.ndim == 1
        x = x.reshape(-1, self.dim)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
        p = softmax(x @ self.weights.T.astype(np.float64) + self.bias.astype(np.float64))
        return p[0] if one else p

    def check_store(self, store: Any) -> None:
        """Refuse a store whose model or checkpoint is not the one the head was trained on."""
        if self.model != store.model_name or self.checkpoint_sha256 != store.checkpoint_sha256:
            raise ClassifyError(
                f"this head was trained on features of {self.model} @ {self.checkpoint_sha256[:12]}, but the store "
                f"uses {store.model_name} @ {store.checkpoint_sha256[:12]}; train a head for this store with "
                f"`egoindex probe`")
        if self.dim != int(store.dim):
            raise ClassifyError(f"head expects {self.dim}-d features, the store has {store.dim}-d")

    def meta(self) -> dict[str, Any]:
        return {"format": HEAD_FORMAT, "version": HEAD_VERSION, "model": self.model,
                "checkpoint_sha256": self.checkpoint_sha256, "embed_dim": self.dim, "pooling": self.pooling,
                "fps": self.fps, "clip_seconds": self.clip_seconds, "clip_stride": self.clip_stride,
                "classes": list(self.classes), "weights_file": "head.npz", "egoindex_version": __version__,
                "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **self.extra}

    def save(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``head.npz`` then ``head.json`` atomically (json last: it marks a complete head)."""
        out = Path(out_dir)
        npz, meta = out / "head.npz", out / "head.json"
        with atomic_open(npz, "wb") as f:
            np.savez(f, weights=self.weights, bias=self.bias, classes=np.array(self.classes, dtype=str))
        write_json(meta, self.meta())
        return npz, meta


def _paths(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        return path / "head.npz", path / "head.json"
    if path.suffix == ".json":
        return path.with_suffix(".npz"), path
    return path, path.with_suffix(".json")


def load_head(path: str | Path) -> LinearHead:
    """Load a head from its folder, ``head.npz`` or ``head.json`` (never unpickles anything)."""
    npz, meta_path = _paths(Path(path))
    if not npz.is_file() or not meta_path.is_file():
        raise ClassifyError(f"no linear head at {path}: need both {npz.name} and {meta_path.name} "
                            f"(written by `egoindex probe`)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ClassifyError(f"cannot read {meta_path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise ClassifyError(f"{meta_path} is not an egoindex linear head (format {HEAD_FORMAT!r})")
    if int(meta.get("version", 0)) > HEAD_VERSION:
        raise ClassifyError(f"{meta_path} is head format version {meta.get('version')}; this egoindex reads {HEAD_VERSION}")
    try:
        with np.load(npz, allow_pickle=False) as z:
            weights, bias, classes = z["weights"], z["bias"], [str(c) for c in z["classes"]]
    except (OSError, ValueError, KeyError) as e:
        raise ClassifyError(f"cannot read {npz} as a linear head: {e}") from e
    if classes != list(meta.get("classes", classes)):
        raise ClassifyError(f"{npz.name} and {meta_path.name} list different classes; the head is damaged")
    try:
        keep = {"model", "checkpoint_sha256", "fps", "clip_seconds", "clip_stride", "pooling"}
        extra = {k: v for k, v in meta.items() if k not in keep | {"format", "version", "embed_dim", "classes",
                                                                     "weights_file", "egoindex_version", "created_at"}}
        return LinearHead(classes, weights, bias, str(meta["model"]), str(meta["checkpoint_sha256"]),
                          float(meta["fps"]), float(meta["clip_seconds"]), float(meta["clip_stride"]),
                          str(meta.get("pooling", POOLING)), extra)
    except KeyError as e:
        raise ClassifyError(f"{meta_path} lacks {e.args[0]!r}") from e
