"""Ego4D-format NLQ and moments annotation files for the demo corpus, built from its ground truth.

Why: they let the whole NLQ and MQ paths (export -> VSLNet / VSGN preparation -> training and
evaluation) run on the synthetic demo corpus, whose answers are known exactly.  The files follow
the schemas of :mod:`egoindex.export.nlq` and :mod:`egoindex.export.moments`; the same inputs
give the same bytes (uuid5 uids, no dates).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json, write_json
from egoindex.errors import AnnotationError, ExportError
from egoindex.export.fields import check_uid, list_of, number, string
from egoindex.export.nlq import NLQ_TEMPLATE_WHERE_SEEN
from egoindex.media.discover import video_uid

__all__ = ["demo_nlq_annotations", "demo_moments_annotations", "write_demo_annotations"]


_DEMO_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://egoindex/demo-nlq")


_SEE_PHRASE = {"rolls": "roll", "bounces": "bounce", "falls": "fall", "spins": "spin"}


_DO_PHRASE = {"grabs": "grab", "shakes": "shake"}


def _demo_question(scene: Mapping[str, Any], level: int) -> str:
    thing = f"the {scene['colour']} {scene['object']}"
    room = f" in the {scene['room']}"
    if level == 0:
        return f"where did I see {thing}?"
    if level == 1:
        return f"where did I see {thing}{room}?"
    action = str(scene["action"])
    if action in _DO_PHRASE:
        return f"where did I {_DO_PHRASE[action]} {thing}{room}?"
    return f"where did I see {thing} {_SEE_PHRASE.get(action, action)}{room}?"


def _chosen_videos(ground_truth: Mapping[str, Any],
                   video_uids: Mapping[str, str]) -> Iterator[tuple[str, Mapping[str, Any], str, float]]:
    """The ground truth's videos that ``video_uids`` names, checked: (where, video, uid, duration)."""
    for vi, video in enumerate(list_of(ground_truth, "videos", "ground_truth")):
        vw = f"ground_truth.videos[{vi}]"
        path = string(video, "path", vw)
        if path in video_uids:
            yield vw, video, check_uid(video_uids[path], f"video uid for {path!r}"), number(video, "duration", vw)


def _annotation_file(kind: str, split: str, out_videos: list[dict[str, Any]]) -> dict[str, Any]:
    """The Ego4D annotation-file envelope around ``out_videos`` (no dates: the same inputs give the same file)."""
    if not out_videos:
        raise ExportError("none of the ground-truth videos has a uid in video_uids")
    return {"version": "1", "date": "", "description": f"egoindex demo corpus {kind} annotations ({split})",
            "manifest": "", "videos": out_videos}


def demo_nlq_annotations(ground_truth: Mapping[str, Any], video_uids: Mapping[str, str],
                         split: str = "train") -> dict[str, Any]:
    """An Ego4D-format NLQ annotation file for the demo corpus (one clip per video, one query per scene).

    Why: it lets the whole NLQ path (export -> VSLNet preparation -> training/eval) run on the
    demo corpus with exact answers.  Each video in ``ground_truth`` (the demo corpus's
    ``ground_truth.json``) whose ``path`` is in ``video_uids`` becomes one clip spanning the whole
    video (``clip_uid = video_uid``), with one annotation holding one query per scene; the
    response window is the scene's ``[start, end]`` clipped to the video.  Queries use the real
    template ``"Objects: In what location did I see object X ?"`` and are made unique within a
    clip by adding the room, then the action, only when needed ("where did I see the red ball?",
    "... in the kitchen?", "where did I see the red ball bounce in the kitchen?").  Frame
    numbers use the corpus ``fps`` (30 if absent).  Uids are uuid5 of the video uid, no dates:
    the same inputs give the same file.
    """
    fps = float(ground_truth.get("fps") or 30.0)
    out_videos: list[dict[str, Any]] = []
    for vw, video, uid, duration in _chosen_videos(ground_truth, video_uids):
        scenes = list_of(video, "scenes", vw)

        for si, scene in enumerate(scenes):
            if not isinstance(scene, Mapping):
                raise AnnotationError(f"{vw}.scenes[{si}]: expected an object")
            for key in ("colour", "object", "room", "action"):
                string(scene, key, f"{vw}.scenes[{si}]")
        keys = [[(s["colour"], s["object"]), (s["colour"], s["object"], s["room"])] for s in scenes]
        queries: list[dict[str, Any]] = []
        for si, scene in enumerate(scenes):
            sw = f"{vw}.scenes[{si}]"
            start = min(max(number(scene, "start", sw), 0.0), duration)
            end = min(max(number(scene, "end", sw), start), duration)
            level = 2
            for lv in (0, 1):
                if sum(k[lv] == keys[si][lv] for k in keys) == 1:
                    level = lv
                    break
            queries.append(
                {
                    "clip_start_sec": start,
                    "clip_end_sec": end,
                    "video_start_sec": start,
                    "video_end_sec": end,
                    "video_start_frame": int(math.floor(start * fps + 0.5)),
                    "video_end_frame": int(math.floor(end * fps + 0.5)),
                    "template": NLQ_TEMPLATE_WHERE_SEEN,
                    "query": _demo_question(scene, level),
                    "slot_x": f"{scene['colour']} {scene['object']}",
                    "verb_x": None,
                    "slot_y": scene["room"] if level >= 1 else None,
                    "verb_y": None,
                    "raw_tags": [],
                }
            )
        end_frame = int(math.floor(duration * fps + 0.5))
        out_videos.append(
            {
                "video_uid": uid,
                "split": split,
                "clips": [
                    {
                        "clip_uid": uid,
                        "video_start_sec": 0.0,
                        "video_end_sec": duration,
                        "video_start_frame": 0,
                        "video_end_frame": end_frame,
                        "clip_start_sec": 0.0,
                        "clip_end_sec": duration,
                        "clip_start_frame": 0,
                        "clip_end_frame": end_frame,
                        "source_clip_uid": uid,
                        "annotations": [
                            {"annotation_uid": str(uuid.uuid5(_DEMO_NAMESPACE, uid)), "language_queries": queries}
                        ],
                    }
                ],
            }
        )
    return _annotation_file("NLQ", split, out_videos)


def demo_moments_annotations(
    ground_truth: Mapping[str, Any],
    video_uids: Mapping[str, str],
    split: str = "train",
    clip_seconds: float | None = None,
) -> dict[str, Any]:
    """An Ego4D-format ``moments_<split>.json`` for the demo corpus: every scene is a moment labelled by its action.

    Why: it drives the MQ (VSGN) export end to end with exact answers, the way
    :func:`demo_nlq_annotations` drives NLQ.  Each video in ``ground_truth`` whose ``path`` is in
    ``video_uids`` is cut into consecutive clips of ``clip_seconds`` (``None``: one clip spanning
    the video; the last clip takes the remainder), like Ego4D cuts its videos into MQ clips.  A
    clip holds one annotation (one annotator) whose labels are the scenes overlapping it, cut to
    the clip: ``label`` = the scene's action (``rolls``, ``grabs`` ...), ``start_time`` /
    ``end_time`` relative to the clip (as in Ego4D), ``video_start_time`` / ``video_end_time`` and
    frames relative to the video, all ``primary``.  Uids are uuid5 of the video uid and the clip
    number: the same inputs give the same file.
    """
    if clip_seconds is not None and not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise ExportError(f"clip_seconds must be a positive number of seconds or None, got {clip_seconds!r}")
    fps = float(ground_truth.get("fps") or 30.0)

    def frame(t: float) -> int:
        return int(math.floor(t * fps + 0.5))

    out_videos: list[dict[str, Any]] = []
    for vw, video, uid, duration in _chosen_videos(ground_truth, video_uids):
        if duration <= 0:
            raise AnnotationError(f"{vw}: duration must be positive, got {duration}")
        scenes = []
        for si, scene in enumerate(list_of(video, "scenes", vw)):
            sw = f"{vw}.scenes[{si}]"
            if not isinstance(scene, Mapping):
                raise AnnotationError(f"{sw}: expected an object")
            scenes.append((number(scene, "start", sw), number(scene, "end", sw), string(scene, "action", sw)))
        step = duration if clip_seconds is None else float(clip_seconds)
        n_clips = max(1, math.ceil(duration / step - 1e-9))
        clips: list[dict[str, Any]] = []
        for k in range(n_clips):
            c0 = round(k * step, 6)
            c1 = duration if k == n_clips - 1 else round(min((k + 1) * step, duration), 6)
            labels = []
            for s, e, action in scenes:
                s, e = max(s, c0), min(e, c1)
                if e <= s:
                    continue
                labels.append(
                    {
                        "start_time": round(s - c0, 6),
                        "end_time": round(e - c0, 6),
                        "label": action,
                        "video_start_time": s,
                        "video_end_time": e,
                        "video_start_frame": frame(s),
                        "video_end_frame": frame(e),
                        "primary": True,
                    }
                )
            clip_uid = str(uuid.uuid5(_DEMO_NAMESPACE, f"{uid}/moments/{k}"))
            clips.append(
                {
                    "clip_uid": clip_uid,
                    "video_start_sec": c0,
                    "video_end_sec": c1,
                    "video_start_frame": frame(c0),
                    "video_end_frame": frame(c1),
                    "clip_start_sec": 0.0,
                    "clip_end_sec": round(c1 - c0, 6),
                    "clip_start_frame": 0,
                    "clip_end_frame": frame(c1 - c0),
                    "source_clip_uid": clip_uid,
                    "annotations": [
                        {"annotator_uid": str(uuid.uuid5(_DEMO_NAMESPACE, f"{clip_uid}/annotator")), "labels": labels}
                    ],
                }
            )
        out_videos.append({"video_uid": uid, "split": split, "clips": clips})
    return _annotation_file("moments", split, out_videos)


def write_demo_annotations(demo_dir: str | Path, out_dir: str | Path, store: Any = None,
                           clip_seconds: float | None = 15.0) -> dict[str, list[str]]:
    """Ego4D-format ``nlq_<split>.json`` and ``moments_<split>.json`` for a demo corpus folder.

    Video uids are egoindex's (:func:`egoindex.media.discover.video_uid` of the ground-truth path), so
    clip uids equal store video uids.  With a store (an opened :class:`~egoindex.store.Store`),
    only its videos are annotated and each goes to its store split; without one, all videos go
    to ``train``.  Moments clips are ``clip_seconds`` long.  Returns split -> written files.
    """
    demo = Path(demo_dir)
    gt_path = demo / "ground_truth.json"
    if not gt_path.is_file():
        raise ExportError(f"{demo} has no ground_truth.json (write one with `egoindex demo-data`)")
    gt = read_json(gt_path)
    by_split: dict[str, dict[str, str]] = {}
    for v in gt.get("videos", []):
        path = v.get("path") if isinstance(v, dict) else None
        if not isinstance(path, str):
            continue
        uid = video_uid(path)
        if store is not None:
            row = store.videos.get(uid)
            if row is None:
                continue
            split = str(row.get("split") or "train")
        else:
            split = "train"
        by_split.setdefault(split, {})[path] = uid
    if not by_split:
        raise ExportError("none of the demo videos is in the store" if store is not None
                          else "the ground truth lists no videos")
    out = Path(out_dir)
    written: dict[str, list[str]] = {}
    for split in sorted(by_split):
        uids = by_split[split]
        nlq = demo_nlq_annotations(gt, uids, split=split)
        mom = demo_moments_annotations(gt, uids, split=split, clip_seconds=clip_seconds)
        paths = [out / f"nlq_{split}.json", out / f"moments_{split}.json"]
        write_json(paths[0], nlq)
        write_json(paths[1], mom)
        written[split] = [os.fspath(p) for p in paths]
    return written

