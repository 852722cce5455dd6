"""The VSGN (Ego4D MQ) layout: per-video feature files and ``clip_annotations.json``.

Why: the official baseline in ``EGO4D/episodic-memory`` reads features and annotations from fixed
places in fixed shapes; writing exactly that lets the unchanged baseline run on egoindex
embeddings.  Every structure below was read off the public code.

VSGN (``MQ``)
-------------
* ``Convert_annotation.py`` (current version) builds ``clip_annotations.json`` from
  ``moments_{train,val,test_unannotated}.json``: per clip ``{"video_id", "clip_id",
  "parent_start_sec" (clip video_start_sec), "parent_end_sec" (clip video_end_sec),
  "v_duration" (ego4d.json duration_sec), "fps" (feature rows / v_duration), "annotations"
  (the labels with ``primary`` true, not read for the test split), "subset" (the video's
  split)}``; a clip seen again only adds annotations; non-test clips left without annotations
  are dropped; videos without a feature file are skipped.  The published
  ``MQ/Evaluation/ego4d/annot/clip_annotations_split.json`` keeps only ``start_time``,
  ``end_time``, ``label`` per annotation -- the three fields ``Utils/dataset.py`` reads -- and so
  do we.
* ``Utils/dataset.py`` loads ``{feature_path}/{video_id}.pt`` ([T, D]) and slices it with
  :func:`egoindex.export.windows.mq_slice`; ``--input_feat_dim`` must equal D (default 2304).

Layout written by :func:`write_vsgn`::

    out_dir/features/{video_uid}.pt         float32 [T, D]
    out_dir/clip_annotations.json
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import write_json
from egoindex.errors import AnnotationError, ExportError
from egoindex.export.feature_files import (
    FEATURES_DIR,
    common_dim,
    extra_pt_files,
    validated_features,
    write_feature_files,
)
from egoindex.export.fields import list_of, number, string
from egoindex.export.windows import VSGN_TEMPORAL_SCALE, mq_slice

__all__ = ["CLIP_ANNOTATIONS_FILE", "write_vsgn"]

CLIP_ANNOTATIONS_FILE = "clip_annotations.json"


def write_vsgn(
    out_dir: str | Path,
    video_features: Mapping[str, Any],
    clip_annotations: Mapping[str, Mapping[str, Any]],
    strict: bool = True,
) -> dict[str, Any]:
    """Write per-video features and ``clip_annotations.json`` in VSGN's layout.

    ``video_features``: video_uid -> [T, D] (float32 ``{video_uid}.pt`` each).
    ``clip_annotations``: clip_uid -> entry as built by
    :func:`~egoindex.export.moments.build_clip_annotations`.  A
    missing ``fps`` is set to ``T / v_duration``; a given one must agree with it (old VSGN
    derives it, new VSGN reads it: both must see the same number).  Clips whose video has no
    features are an error with ``strict``, else dropped and listed (the original skips them).
    The summary also lists clips longer than VSGN's 928-row ``temporal_scale`` (truncated there).
    """
    out = Path(out_dir)
    mats = validated_features(video_features, "video_uid")
    dim = common_dim(mats)
    if not isinstance(clip_annotations, Mapping):
        raise AnnotationError("clip_annotations must be a mapping clip_uid -> entry")

    entries: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    too_long: list[str] = []
    for cid, info in clip_annotations.items():
        cw = f"clip_annotations[{cid!r}]"
        if not isinstance(info, Mapping):
            raise AnnotationError(f"{cw}: expected an object")
        vid = string(info, "video_id", cw)
        if vid not in mats:
            if strict:
                raise ExportError(f"{cw}: no features for video {vid!r} (pass strict=False to drop such clips)")
            skipped.append(cid)
            continue
        T = int(mats[vid].shape[0])
        if info.get("v_duration") is None:
            raise ExportError(f"{cw}: v_duration unknown; pass video_durations to build_clip_annotations")
        v_duration = number(info, "v_duration", cw)
        if v_duration <= 0:
            raise ExportError(f"{cw}: v_duration must be positive, got {v_duration}")
        fps = T / v_duration
        if info.get("fps") is not None and not math.isclose(number(info, "fps", cw), fps, rel_tol=1e-9):
            raise ExportError(f"{cw}: fps {info['fps']} disagrees with T / v_duration = {T} / {v_duration} = {fps}")
        start, end = number(info, "parent_start_sec", cw), number(info, "parent_end_sec", cw)
        if not (0 <= start <= end):
            raise AnnotationError(f"{cw}: need 0 <= parent_start_sec <= parent_end_sec, got [{start}, {end}]")
        subset = string(info, "subset", cw)
        anns = []
        for ai, a in enumerate(list_of(info, "annotations", cw)):
            aw = f"{cw}.annotations[{ai}]"
            anns.append(
                {"start_time": number(a, "start_time", aw), "end_time": number(a, "end_time", aw),
                 "label": string(a, "label", aw)}
            )
        rows = mq_slice(T, v_duration, start, end)
        if rows.stop - rows.start > VSGN_TEMPORAL_SCALE:
            too_long.append(cid)
        entries[cid] = {
            "video_id": vid,
            "clip_id": string(info, "clip_id", cw) if "clip_id" in info else cid,
            "parent_start_sec": start,
            "parent_end_sec": end,
            "v_duration": v_duration,
            "fps": fps,
            "annotations": anns,
            "subset": subset,
        }

    feat_dir = out / FEATURES_DIR
    write_feature_files(feat_dir, mats)
    write_json(out / CLIP_ANNOTATIONS_FILE, entries)
    return {
        "format": "vsgn",
        "out_dir": str(out),
        "features_dir": str(feat_dir),
        "clip_annotations": str(out / CLIP_ANNOTATIONS_FILE),
        "num_videos": len(mats),
        "num_clips": len(entries),
        "num_annotations": int(sum(len(e["annotations"]) for e in entries.values())),
        "dim": int(dim),
        "skipped_clips": skipped,
        "clips_over_temporal_scale": too_long,
        "extra_pt_files": extra_pt_files(feat_dir, list(mats)),
    }

