"""Ego4D NLQ annotation files (``nlq_<set>.json``): read, validate, iterate the queries.

Why validate up front: VSLNet's preparation (``NLQ/VSLNet/utils/prepare_ego4d_dataset.py``)
indexes these files by key and fails deep inside with a bare ``KeyError``; we check every field
it reads and name the bad path (:class:`~egoindex.errors.AnnotationError`).

Schema (field names from the Ego4D docs "Annotation Schemas" page, ``EGO4D/docs``
``data/annotations-schemas/index.html``): ``{version, date, description, manifest, videos:
[{video_uid, split, clips: [{clip_uid, video_start_sec, video_end_sec, video_start_frame,
video_end_frame, clip_start_sec, clip_end_sec, clip_start_frame, clip_end_frame, source_clip_uid,
annotations: [{annotation_uid, language_queries: [{clip_start_sec, clip_end_sec, video_start_sec,
video_end_sec, video_start_frame, video_end_frame, template, query, slot_x, verb_x, slot_y,
verb_y, raw_tags}]}]}]}]}``.  The unannotated test file has no query times.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json
from egoindex.errors import AnnotationError
from egoindex.export.fields import number, objects, string

__all__ = [
    "NLQ_SPLITS",
    "NLQ_TEMPLATE_WHERE_SEEN",
    "NLQQuery",
    "validate_nlq_annotations",
    "load_nlq_annotations",
    "iter_nlq_queries",
    "split_name_of",
]

NLQ_SPLITS: tuple[str, ...] = ("train", "val", "test")
#: A real Ego4D NLQ template name (as spelled in the annotation files, space before "?").
NLQ_TEMPLATE_WHERE_SEEN = "Objects: In what location did I see object X ?"


@dataclass(frozen=True)
class NLQQuery:
    """One language query of an Ego4D NLQ file, with where it sits in the file."""

    video_uid: str
    clip_uid: str
    annotation_uid: str
    query_idx: int  # position in the annotation's language_queries (what VSLNet records)
    query: str | None  # None / "" for the few empty queries VSLNet skips
    template: str | None
    clip_start_sec: float | None  # None in unannotated (test) files
    clip_end_sec: float | None


def validate_nlq_annotations(nlq: Any, require_times: bool = True, source: str = "nlq") -> dict[str, Any]:
    """Check the fields VSLNet's preparation reads; raise :class:`AnnotationError` naming the bad path.

    Required: ``videos[].video_uid``, ``videos[].clips[].{clip_uid, video_start_sec,
    video_end_sec, annotations}``, ``annotations[].{annotation_uid, language_queries}``, and per
    query ``clip_start_sec <= clip_end_sec`` when ``require_times`` (set it False for the
    unannotated test file).  ``query`` / ``template`` may be missing or null, as in real files.
    """
    if not isinstance(nlq, Mapping):
        raise AnnotationError(f"{source}: expected a JSON object with 'videos', got {type(nlq).__name__}")
    for vw, video in objects(nlq, "videos", source):
        string(video, "video_uid", vw)
        for cw, clip in objects(video, "clips", vw):
            string(clip, "clip_uid", cw)
            s, e = number(clip, "video_start_sec", cw), number(clip, "video_end_sec", cw)
            if e < s:
                raise AnnotationError(f"{cw}: video_end_sec {e} < video_start_sec {s}")
            for aw, ann in objects(clip, "annotations", cw):
                string(ann, "annotation_uid", aw)
                for qw, q in objects(ann, "language_queries", aw):
                    for key in ("query", "template"):
                        if q.get(key) is not None and not isinstance(q[key], str):
                            raise AnnotationError(f"{qw}.{key}: expected a string or null, got {q[key]!r}")
                    if require_times:
                        qs, qe = number(q, "clip_start_sec", qw), number(q, "clip_end_sec", qw)
                        if qe < qs:
                            raise AnnotationError(f"{qw}: clip_end_sec {qe} < clip_start_sec {qs}")
    return dict(nlq)


def load_nlq_annotations(path: str | Path, require_times: bool = True) -> dict[str, Any]:
    """Read and validate an Ego4D ``nlq_<split>.json`` (see :func:`validate_nlq_annotations`)."""
    path = Path(path)
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise AnnotationError(f"{path}: cannot read NLQ annotations: {e}") from e
    return validate_nlq_annotations(data, require_times=require_times, source=str(path))


def iter_nlq_queries(nlq: Mapping[str, Any]) -> Iterator[NLQQuery]:
    """Every language query of a (validated) NLQ file, in file order."""
    for video in nlq["videos"]:
        for clip in video["clips"]:
            for ann in clip["annotations"]:
                for idx, q in enumerate(ann["language_queries"]):
                    s, e = q.get("clip_start_sec"), q.get("clip_end_sec")
                    yield NLQQuery(
                        video_uid=video["video_uid"],
                        clip_uid=clip["clip_uid"],
                        annotation_uid=ann["annotation_uid"],
                        query_idx=idx,
                        query=q.get("query"),
                        template=q.get("template"),
                        clip_start_sec=None if s is None else float(s),
                        clip_end_sec=None if e is None else float(e),
                    )



def split_name_of(path: str | Path, prefix: str) -> str:
    """``nlq_train.json`` -> ``train``; ``nlq_test_unannotated.json`` -> ``test``; else the stem without the prefix."""
    stem = Path(path).name.split(".")[0]
    if stem.lower().startswith(prefix):
        stem = stem[len(prefix):]
    head = stem.split("_")[0].lower()
    return head if head in ("train", "val", "test") else stem
