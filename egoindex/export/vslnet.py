"""The VSLNet (Ego4D NLQ) layout: clip feature files, per-split dataset JSONs, query-text features.

Why: the official baseline in ``EGO4D/episodic-memory`` reads features and annotations from fixed
places in fixed shapes.  Writing exactly that lets anyone train or evaluate the unchanged
baseline on egoindex embeddings.  Every structure below was read off the public code.

VSLNet (``NLQ/VSLNet``)
-----------------------
* ``utils/data_util.py`` ``load_video_features``: every ``*.pt`` in the feature folder, keyed by
  ``filename.split("/")[-1].split(".")[0]`` -- so a clip uid must not contain ``.`` or ``/``, and
  no other ``.pt`` file may live in that folder (our text features go elsewhere) -- loaded with
  ``torch.load(...).numpy()``, i.e. a CPU tensor; ``utils/data_loader.py`` casts the padded
  batch to float32.  ``utils/data_gen.py`` reads ``feature_shapes.json`` ({clip_uid: rows}) from
  the same folder and ``train.json`` / ``val.json`` / ``test.json`` from the dataset folder.
* ``utils/prepare_ego4d_dataset.py`` ``reformat_data`` writes, per split, a JSON object keyed by
  clip_uid: ``{"fps", "num_frames", "timestamps", "exact_times", "sentences",
  "annotation_uids", "query_idx"}`` where ``sentences`` holds
  ``query.strip(" ").strip("?").lower() + "?"``, ``exact_times`` the annotated
  ``[clip_start_sec, clip_end_sec]`` (``[0.0, 0.0]`` placeholders in the test split),
  ``timestamps`` ``[get_nearest_frame(start, floor), get_nearest_frame(end, ceil)]`` with
  ``get_nearest_frame(t, f) = f(int(t * fps))`` (truncation first, so the ceil is a no-op --
  reproduced), ``query_idx`` the position in the annotation's ``language_queries`` (queries with
  an empty ``query`` are skipped but still count), and ``annotation_uids`` the owning
  annotation.  We write ``fps`` = our feature rate and ``num_frames`` exactly as the original:
  ``get_nearest_frame(video_end_sec - video_start_sec, ceil)`` = ``int(clip_duration * fps)``,
  *not* the clip's feature rows.  The two differ (a 34.6 s clip from 10.2 s: 64 vs the 66 rows
  ``feature[19 : 84 + 1]`` keeps), and ``data_gen.py`` computes ``duration = num_frames / fps``
  and feeds it with the ``feature_shapes.json`` row count to ``time_to_index``, so VSLNet's
  seconds -> row map is slightly stretched on official features too; we reproduce it so that
  VSLNet trained or evaluated on an egoindex export sees the same arithmetic as on Ego4D's.
* ``utils/data_gen.py`` ``EpisodicNLQProcessor.convert`` opens ``train.json``, ``val.json`` and
  ``test.json`` unconditionally, so :func:`write_vslnet` always writes all three when
  annotations are given, a split without an annotation file as ``{}`` (VSLNet reads an empty
  split as no queries; an empty val split leaves ``val_set = None``, and ``main.py --mode train``
  evaluates on val, so training needs a val file; an empty test split only matters to ``--mode test``).
* EgoVLP (``showlab/EgoVLP``, ``run/test_nlq.py``) saves query-sentence features as
  ``np.save("sentence.npy", {raw_text: [1, D] tensor})``.  We write the same dict with float32
  numpy values (a pickled object array -- ``np.save(..., allow_pickle=True)``; it is our own
  output, read it with ``np.load(path, allow_pickle=True).item()`` only from trusted folders)
  plus ``sentence.pt``, the same dict as float32 tensors, loadable with
  ``torch.load(..., weights_only=True)``.

Layout written by :func:`write_vslnet` (copy/link the folders to VSLNet's
``data/features/<task>/<fv>/`` and ``data/dataset/<task>/``)::

    out_dir/features/{clip_uid}.pt          float32 [N, D]
    out_dir/features/feature_shapes.json    {clip_uid: N}
    out_dir/dataset/{split}.json            per-split dataset JSON; train/val/test always (when annotations are given)
    out_dir/text/sentence.npy, sentence.pt  query text -> [1, D] (when query features are given)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoindex.core.fsutil import atomic_open, write_json
from egoindex.errors import ExportError
from egoindex.export.feature_files import (
    FEATURES_DIR,
    common_dim,
    extra_pt_files,
    save_tensor,
    validated_features,
    write_feature_files,
)
from egoindex.export.fields import UID_RE
from egoindex.export.nlq import NLQ_SPLITS, validate_nlq_annotations
from egoindex.export.windows import FEATURE_RATE

__all__ = [
    "DATASET_DIR",
    "TEXT_DIR",
    "SHAPES_FILE",
    "VSLNET_SPLITS",
    "QUERY_NPY",
    "QUERY_PT",
    "process_question",
    "vslnet_num_frames",
    "vslnet_dataset_split",
    "write_vslnet",
]

DATASET_DIR = "dataset"
TEXT_DIR = "text"
SHAPES_FILE = "feature_shapes.json"
QUERY_NPY = "sentence.npy"
QUERY_PT = "sentence.pt"
#: The dataset files VSLNet's ``EpisodicNLQProcessor.convert`` opens, every one of them, every run.
VSLNET_SPLITS: tuple[str, ...] = ("train", "val", "test")


def process_question(question: str) -> str:
    """VSLNet's canonical query text: ``question.strip(" ").strip("?").lower() + "?"``."""
    return question.strip(" ").strip("?").lower() + "?"


def _nearest(t: float, rate: float, round_fn: Any) -> int:
    """``get_nearest_frame`` of ``prepare_ego4d_dataset.py`` at ``rate``: truncation first, as the original."""
    return int(round_fn(int(t * rate)))


def vslnet_num_frames(video_start_sec: float, video_end_sec: float, rate: float = FEATURE_RATE) -> int:
    """``num_frames`` as ``prepare_ego4d_dataset.py`` writes it: ``get_nearest_frame(clip_duration,
    ceil)`` = ``int((video_end_sec - video_start_sec) * rate)``; not the clip's feature rows (see
    the module docstring for why both are kept as the original has them)."""
    return _nearest(float(video_end_sec) - float(video_start_sec), rate, math.ceil)


def vslnet_dataset_split(nlq: Mapping[str, Any], rate: float, test_split: bool = False) -> dict[str, dict[str, Any]]:
    """One split's VSLNet dataset JSON (``reformat_data`` of ``prepare_ego4d_dataset.py``).

    Same keys, order and arithmetic as the original, with ``fps = rate`` and ``num_frames`` =
    :func:`vslnet_num_frames`.  ``test_split`` writes ``[0.0, 0.0]`` times as the original does
    for the unannotated test file.
    """

    def nearest(t: float, round_fn: Any) -> int:
        return _nearest(t, rate, round_fn)

    out: dict[str, dict[str, Any]] = {}
    for video in nlq["videos"]:
        for clip in video["clips"]:
            uid = clip["clip_uid"]
            entry = {
                "fps": rate,
                "num_frames": vslnet_num_frames(clip["video_start_sec"], clip["video_end_sec"], rate),
                "timestamps": [],
                "exact_times": [],
                "sentences": [],
                "annotation_uids": [],
                "query_idx": [],
            }
            for ann in clip["annotations"]:
                for index, datum in enumerate(ann["language_queries"]):
                    if test_split:
                        start, end = 0.0, 0.0
                    else:
                        start, end = float(datum["clip_start_sec"]), float(datum["clip_end_sec"])
                    if not datum.get("query"):
                        continue
                    entry["sentences"].append(process_question(datum["query"]))
                    entry["annotation_uids"].append(ann["annotation_uid"])
                    entry["query_idx"].append(index)
                    entry["exact_times"].append([start, end])
                    entry["timestamps"].append([nearest(start, math.floor), nearest(end, math.ceil)])
            out[uid] = entry  # like the original, a repeated clip_uid keeps its last entry
    return out


def _query_matrix(text: Any, vec: Any) -> np.ndarray:
    if not isinstance(text, str) or not text:
        raise ExportError(f"query feature keys must be non-empty strings, got {text!r}")
    if hasattr(vec, "detach"):
        vec = vec.detach().cpu().numpy()
    a = np.asarray(vec, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] != 1 or a.shape[1] == 0:
        raise ExportError(f"query feature for {text!r} must be [D] or [1, D], got shape {a.shape}")
    if not np.isfinite(a).all() or not a.any():
        raise ExportError(f"query feature for {text!r} is non-finite or all zero")
    return np.ascontiguousarray(a)


def write_vslnet(
    out_dir: str | Path,
    features: Mapping[str, Any],
    rate: float = FEATURE_RATE,
    annotations: Sequence[Mapping[str, Any]] | None = None,
    query_features: Mapping[str, Any] | None = None,
    split_names: Sequence[str] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    """Write clip features (+ dataset JSONs, + query-text features) in VSLNet's layout.

    ``features``: clip_uid -> [N, D] (numpy or torch); stored as float32 CPU tensors, one
    ``{clip_uid}.pt`` each, with ``feature_shapes.json``.  ``rate``: features per second of
    those rows (1.875 on the official grid).  ``annotations``: loaded NLQ files, one per split,
    named by ``split_names`` (default ``train, val, test`` in order); a split named ``test`` gets
    the original's placeholder times.  With annotations, each of :data:`VSLNET_SPLITS` without a
    file is written as an empty split ``{}`` (VSLNet opens all three) and listed in the summary's
    ``empty_splits``.  ``query_features``: query text -> [D] or [1, D].

    With ``strict`` an annotated clip without features is an error (VSLNet would silently drop
    its queries); otherwise it is listed in the summary.  Every file is written atomically
    (temporary sibling + ``os.replace``), so a killed export never leaves a truncated tensor.
    Returns a summary dict (paths, counts, D, missing clips, unrelated ``.pt`` files found);
    VSLNet must then be run with ``--video_feature_dim`` = the summary's ``dim``.
    """
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ExportError(f"rate must be a positive number of features per second, got {rate!r}")
    out = Path(out_dir)
    mats = validated_features(features, "clip_uid")
    dim = common_dim(mats)
    shapes = {uid: int(mats[uid].shape[0]) for uid in sorted(mats)}

    split_jsons: dict[str, dict[str, Any]] = {}
    missing: dict[str, list[str]] = {}
    empty: list[str] = []
    if annotations is not None:
        names = list(split_names) if split_names is not None else list(NLQ_SPLITS[: len(annotations)])
        if len(names) != len(annotations):
            raise ExportError(f"{len(annotations)} annotation files but {len(names)} split names")
        if len(set(names)) != len(names):
            raise ExportError(f"split names must be distinct, got {names}")
        for name, nlq in zip(names, annotations):
            if not isinstance(name, str) or not UID_RE.match(name):
                raise ExportError(f"split name {name!r} must be a plain file stem")
            test = name == "test"
            validate_nlq_annotations(nlq, require_times=not test, source=f"annotations[{name}]")
            data = vslnet_dataset_split(nlq, rate, test_split=test)
            lacking = sorted(uid for uid in data if uid not in shapes)
            if lacking:
                if strict:
                    raise ExportError(
                        f"split {name!r}: {len(lacking)} annotated clips have no features, e.g. {lacking[:5]}; "
                        "VSLNet would silently drop their queries (pass strict=False to export anyway)"
                    )
                missing[name] = lacking
            split_jsons[name] = data
        empty = [n for n in VSLNET_SPLITS if n not in split_jsons]
        for name in empty:
            split_jsons[name] = {}  # VSLNet's convert() opens all three files

    text: dict[str, np.ndarray] | None = None
    if query_features is not None:
        text = {k: _query_matrix(k, v) for k, v in query_features.items()}
        if not text:
            raise ExportError("query_features is empty")
        if len({a.shape[1] for a in text.values()}) != 1:
            raise ExportError("all query features must share one dimension")

    # Everything is validated: now write (features first, the small index files after them).
    feat_dir = out / FEATURES_DIR
    write_feature_files(feat_dir, mats)
    write_json(feat_dir / SHAPES_FILE, shapes)
    summary: dict[str, Any] = {
        "format": "vslnet",
        "out_dir": str(out),
        "features_dir": str(feat_dir),
        "feature_shapes": str(feat_dir / SHAPES_FILE),
        "num_clips": len(shapes),
        "num_features": int(sum(shapes.values())),
        "dim": int(dim),
        "rate": float(rate),
        "dataset": {},
        "text": None,
        "missing_features": missing,
        "empty_splits": empty,
        "extra_pt_files": extra_pt_files(feat_dir, list(shapes)),
    }
    for name, data in split_jsons.items():
        path = out / DATASET_DIR / f"{name}.json"
        write_json(path, data)
        summary["dataset"][name] = {
            "path": str(path),
            "clips": len(data),
            "queries": int(sum(len(d["sentences"]) for d in data.values())),
        }
    if text is not None:
        text_dir = out / TEXT_DIR
        text_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(text_dir / QUERY_NPY, "wb") as f:
            np.save(f, text, allow_pickle=True)  # a dict -> pickled 0-d object array, as EgoVLP does
        save_tensor(text_dir / QUERY_PT, {k: torch.from_numpy(v).clone() for k, v in text.items()})
        summary["text"] = {
            "npy": str(text_dir / QUERY_NPY),
            "pt": str(text_dir / QUERY_PT),
            "queries": len(text),
            "dim": int(next(iter(text.values())).shape[1]),
        }
    return summary

