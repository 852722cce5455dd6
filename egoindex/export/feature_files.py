"""Feature files as both baselines read them: ``features/{uid}.pt``, one float32 [N, D] CPU tensor each.

Why one place: VSLNet (``utils/data_util.py`` ``load_video_features``) and VSGN
(``Utils/dataset.py``) both load every ``{uid}.pt`` of a folder with ``torch.load`` and key it
by the text before the first ``.``; both must get contiguous float32 rows of one dimension and
no all-zero row (zero rows look like padding to the models: the EgoVLP extractor defect).
Files are written atomically (temporary sibling + ``os.replace``), so a killed export never
leaves a truncated tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoindex.core.fsutil import atomic_open
from egoindex.errors import ExportError
from egoindex.export.fields import check_uid

__all__ = ["FEATURES_DIR", "as_feature_matrix", "common_dim", "validated_features", "save_tensor",
           "write_feature_files", "extra_pt_files"]

FEATURES_DIR = "features"


def as_feature_matrix(x: Any, name: str) -> np.ndarray:
    """A contiguous float32 [N, D] copy of ``x``; rejects empty, non-finite and all-zero rows."""
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ExportError(f"features for {name!r} must be a non-empty [N, D] array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ExportError(f"features for {name!r} contain NaN or inf")
    zero = np.flatnonzero(~a.any(axis=1))
    if zero.size:
        raise ExportError(
            f"features for {name!r} have all-zero rows {zero[:5].tolist()}{'...' if zero.size > 5 else ''}; "
            "zero rows look like padding to the models (the EgoVLP extractor defect) -- refusing to write them"
        )
    return a


def common_dim(mats: Mapping[str, np.ndarray]) -> int:
    """The one D every matrix shares."""
    dims = {m.shape[1] for m in mats.values()}
    if len(dims) != 1:
        raise ExportError(f"all feature files must share one dimension D, got {sorted(dims)}")
    return dims.pop()


def validated_features(features: Mapping[str, Any], what: str) -> dict[str, np.ndarray]:
    """uid -> checked float32 matrix, for a non-empty mapping whose uids can be file stems."""
    if not features:
        raise ExportError(f"no {what} features given")
    return {check_uid(uid, what): as_feature_matrix(x, uid) for uid, x in features.items()}


def save_tensor(path: Path, obj: Any) -> None:
    """``torch.save`` atomically."""
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def write_feature_files(folder: Path, mats: Mapping[str, np.ndarray]) -> None:
    """``folder/{uid}.pt`` for every matrix, in uid order."""
    folder.mkdir(parents=True, exist_ok=True)
    for uid in sorted(mats):
        # .clone(): a tensor that owns its storage, so the file holds exactly [N, D] float32.
        save_tensor(folder / f"{uid}.pt", torch.from_numpy(mats[uid]).clone())


def extra_pt_files(folder: Path, keep: Sequence[str]) -> list[str]:
    """``.pt`` files in ``folder`` that are not ours: the baselines would load them as features too."""
    keep_set = set(keep)
    return sorted(p.name for p in folder.glob("*.pt") if p.name.split(".")[0] not in keep_set)
