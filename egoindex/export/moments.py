"""Ego4D moments annotation files (``moments_<set>.json``): read them and convert to VSGN's clip entries.

Schema (field names from the Ego4D docs "Annotation Schemas" page, ``EGO4D/docs``
``data/annotations-schemas/index.html``): ``{version, date, description, manifest, videos:
[{video_uid, split, clips: [{clip_uid, video_start_sec, video_end_sec, ..., annotations:
[{annotator_uid, labels: [{start_time, end_time, label, video_start_time, video_end_time,
video_start_frame, video_end_frame, primary}]}]}]}]}`` (label times relative to the clip).

The conversion follows VSGN's ``MQ/Convert_annotation.py`` (see :mod:`egoindex.export.vsgn` for
the entries it produces and how VSGN reads them).  Bad fields raise
:class:`~egoindex.errors.AnnotationError` naming their path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json
from egoindex.errors import AnnotationError, ExportError
from egoindex.export.fields import list_of, number, string

__all__ = ["load_moments", "build_clip_annotations"]


def load_moments(path: str | Path) -> dict[str, Any]:
    """Read an Ego4D ``moments_<split>.json``: a JSON object with a ``videos`` list (the entries
    are checked by :func:`build_clip_annotations`)."""
    try:
        data = read_json(Path(path))
    except (OSError, ValueError) as e:
        raise AnnotationError(f"{path}: cannot read moments annotations: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise AnnotationError(f"{path}: not an Ego4D moments file (no 'videos' list)")
    return data


def build_clip_annotations(
    moments_json: Mapping[str, Any],
    video_durations: Mapping[str, float] | None = None,
    feature_counts: Mapping[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """``clip_annotations.json`` content from an Ego4D ``moments_<split>.json`` (``Convert_annotation.py``).

    ``video_durations`` (video_uid -> seconds, Ego4D's ``ego4d.json`` ``duration_sec``) fills
    ``v_duration``; with ``feature_counts`` (video_uid -> T) as well, ``fps = T / v_duration``
    and, as in the original, videos without features are skipped.  Left ``None`` they are
    filled by :func:`~egoindex.export.vsgn.write_vsgn` from the features it writes.  Only
    ``primary`` labels are kept, reduced to ``{start_time, end_time, label}`` (clip-relative
    seconds); test-split clips keep no annotations; non-test clips without any are dropped, as
    the original does.
    """
    where = "moments"
    out: dict[str, dict[str, Any]] = {}
    for vi, video in enumerate(list_of(moments_json, "videos", where)):
        vw = f"{where}.videos[{vi}]"
        vid = string(video, "video_uid", vw)
        split = string(video, "split", vw)
        if feature_counts is not None and vid not in feature_counts:
            continue  # the original skips videos whose feature file is missing
        v_duration = None if video_durations is None or vid not in video_durations else float(video_durations[vid])
        fps = None
        if v_duration is not None and feature_counts is not None:
            if v_duration <= 0:
                raise ExportError(f"{vw}: duration of {vid} must be positive, got {v_duration}")
            fps = int(feature_counts[vid]) / v_duration
        for ci, clip in enumerate(list_of(video, "clips", vw)):
            cw = f"{vw}.clips[{ci}]"
            cid = string(clip, "clip_uid", cw)
            if cid not in out:
                out[cid] = {
                    "video_id": vid,
                    "clip_id": cid,
                    "parent_start_sec": number(clip, "video_start_sec", cw),
                    "parent_end_sec": number(clip, "video_end_sec", cw),
                    "v_duration": v_duration,
                    "fps": fps,
                    "annotations": [],
                    "subset": split,
                }
            if split == "test":
                continue
            for ai, ann in enumerate(list_of(clip, "annotations", cw)):
                for li, label in enumerate(list_of(ann, "labels", f"{cw}.annotations[{ai}]")):
                    lw = f"{cw}.annotations[{ai}].labels[{li}]"
                    if not isinstance(label, Mapping) or "primary" not in label:
                        raise AnnotationError(f"{lw}: missing 'primary'")
                    if label["primary"]:
                        out[cid]["annotations"].append(
                            {
                                "start_time": number(label, "start_time", lw),
                                "end_time": number(label, "end_time", lw),
                                "label": string(label, "label", lw),
                            }
                        )
    return {k: v for k, v in out.items() if v["subset"] == "test" or v["annotations"]}

