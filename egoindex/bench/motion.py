"""Motion direction (``egoindex bench motion``): does the store's model see the order of frames?

Questions (:mod:`egoindex.metrics.motion`) are directional scenes of the motion corpus
(``egoindex demo-data DIR --motion``). For each, ``num_frames`` frames at the midpoints of equal
intervals over the question's window are decoded from the raw video and pooled by the store's
clip encoder twice, in time order and reversed
(:func:`egoindex.bench.videos.embed_clips_from_videos` with ``reverse``); the text tower embeds
the narration and its opposite. Two figures: the video side (text against forward vs reversed
frames: a frame-mean model is at exactly 50 % by construction) and the text side (forward clip
against text vs opposite). Both come with a Wilson 95 % interval and per-action rows.

Why ``--generate-from GROUND_TRUTH`` on this command and not a ``demo`` command: questions come
only from the *val* videos, and which videos are val is decided by the ingest and recorded in the
store's videos table, so generating needs the store (a demo command may not read a store).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.videos import clip_frames_for, embed_clips_from_videos, normalise_rows, store_video_resolver
from egoindex.core.fsutil import sha256_file
from egoindex.core.report import write_report
from egoindex.errors import BenchError
from egoindex.media.discover import video_uid
from egoindex.metrics.motion import (
    CHANCE_PCT,
    MotionQuestion,
    generate_motion_questions,
    motion_metrics,
    pair_credit,
    read_motion_questions,
    write_motion_questions,
)

__all__ = ["generate_motion_file", "run_motion", "store_val_videos"]


def store_val_videos(store: Any, ground_truth: dict[str, Any], split: str = "val") -> dict[str, str]:
    """``{ground-truth video_uid (the file stem): store video_uid}`` of the ground truth's videos
    in the store's ``split``.

    A video is found in the store under its stem (an ingest keyed by the narration file's uid),
    under egoindex's uid of its relative path (a plain ingest of the folder: what ``egoindex
    ingest`` does), or by its source path; it is left out when the store has none of them."""
    by_source = {str(r.get("source") or ""): (uid, r) for uid, r in store.videos.items()}
    chosen: dict[str, str] = {}
    for v in ground_truth.get("videos", []):
        path = str(v.get("path", ""))
        stem = str(v.get("video_uid") or Path(path).stem)
        for uid in (stem, video_uid(path)):
            row = store.videos.get(uid)
            if row is not None:
                found: tuple[str, Any] | None = (uid, row)
                break
        else:
            found = by_source.get(path)
        if found is not None and (split == "all" or found[1].get("split") == split):
            chosen[stem] = found[0]
    return chosen


def generate_motion_file(store: Any, ground_truth: str | Path, out_file: str | Path, split: str = "val") -> Path:
    """Write the questions of ``ground_truth``'s videos in the store's ``split`` to ``out_file``."""
    try:
        gt = json.loads(Path(ground_truth).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BenchError(f"{ground_truth}: not a readable ground truth ({type(e).__name__}: {e})") from None
    if not isinstance(gt, dict):
        raise BenchError(f"{ground_truth}: not a motion-corpus ground truth")
    chosen = store_val_videos(store, gt, split)
    if not chosen:
        raise BenchError(f"the store has no {split} video of {ground_truth} (ingest the motion corpus's folder into "
                         "the store first)")
    # keys stay "{stem}:{scene}"; the window's video is the store's uid, so the store finds its file
    questions = [replace(q, video_uid=chosen[q.video_uid]) for q in generate_motion_questions(gt, set(chosen))]
    if not questions:
        raise BenchError(f"{ground_truth}: the {split} videos have no directional scene (is it the ground truth of "
                         "`egoindex demo-data DIR --motion`?)")
    return write_motion_questions(out_file, questions, source=str(Path(ground_truth).resolve()))


def _scores(store: Any, questions: Sequence[MotionQuestion], videos_dir: str | Path | None, num_frames: int | None,
            short_side: int, batch_size: int, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text . forward, text . reversed, opposite . forward) per question."""
    clips = [(q.video_uid, q.start, q.end) for q in questions]
    resolve = store_video_resolver(store, videos_dir)
    kw = {"num_frames": num_frames, "short_side": short_side, "batch_size": batch_size, "progress": progress}
    fwd = embed_clips_from_videos(store.embedder, clips, resolve, reverse=False, **kw)
    rev = embed_clips_from_videos(store.embedder, clips, resolve, reverse=True, **kw)
    texts = normalise_rows(np.asarray(store.embedder.encode_texts([q.text for q in questions]), np.float32))
    opps = normalise_rows(np.asarray(store.embedder.encode_texts([q.opposite for q in questions]), np.float32))
    return (np.einsum("ij,ij->i", texts, fwd), np.einsum("ij,ij->i", texts, rev),
            np.einsum("ij,ij->i", opps, fwd))


def run_motion(store: Any, questions_file: str | Path, out_dir: str | Path, *, videos_dir: str | Path | None = None,
               num_frames: int | None = None, short_side: int = 256, batch_size: int = 64,
               name: str = "motion", progress: bool = False) -> BenchResult:
    """Score the questions of ``questions_file`` with the store's model (see the module doc);
    ``num_frames`` per window (None: the clip model's own, 4 for a frame model); writes NAME.json,
    NAME.md and NAME_accuracy.png to ``out_dir``."""
    questions = read_motion_questions(questions_file)
    if not questions:
        raise BenchError(f"{questions_file} has no questions")
    num_frames = clip_frames_for(store.embedder, num_frames)
    if num_frames < 2:
        raise BenchError("--num-frames must be >= 2: one frame has no order to reverse")
    t_fwd, t_rev, o_fwd = _scores(store, questions, videos_dir, num_frames, short_side, batch_size, progress)
    video_credit = pair_credit(t_fwd, t_rev)
    text_credit = pair_credit(t_fwd, o_fwd)
    metrics, per_action = motion_metrics(questions, video_credit, text_credit)
    settings: dict[str, Any] = {"num_frames": num_frames, "short_side": short_side,
                                "videos": str(Path(videos_dir).resolve()) if videos_dir is not None else None}
    meta = report_meta(store, "motion", questions=str(Path(questions_file).resolve()),
                       questions_sha256=sha256_file(questions_file), clips_encoder=store.clips_encoder,
                       metric="video side: text vs the window's frames forward and reversed; text side: the forward "
                              "clip vs the text and its opposite; tie (|diff| <= TIE_EPS) = 1/2; Wilson 95 % interval",
                       **settings)
    per_question = [{"key": q.key, "action": q.action, "text": q.text,
                     "video_margin": float(f - r), "video_credit": float(vc),
                     "text_margin": float(f - o), "text_credit": float(tc)}
                    for q, f, r, o, vc, tc in zip(questions, t_fwd, t_rev, o_fwd, video_credit, text_credit)]
    labels = ["video\n(all)"] + [f"video\n{r['action']}".replace(" ", "\n") for r in per_action] + ["text\n(all)"]
    values = [metrics["video_acc"]] + [r["video_acc"] for r in per_action] + [metrics["text_acc"]]
    written = write_report(out_dir, name, metrics, meta, tables={"actions": per_action, "questions": per_question},
                           plots={"accuracy": {"kind": "bars", "labels": labels, "values": values,
                                               "title": f"motion direction (chance {CHANCE_PCT:.0f} %)",
                                               "ylabel": "accuracy (%)"}})
    notes = []
    if metrics["video_ties"] == metrics["n"]:
        notes.append("every video-side question is a tie: the clip vectors ignore frame order (a frame-mean "
                     "clip encoder), so 50 % is by construction, not a measurement of the model")
    return BenchResult(name, metrics, meta, written, notes)
