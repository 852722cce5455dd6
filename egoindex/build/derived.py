"""Build stage 3: the ``clips``, ``utterances`` and ``videos`` rows of newly committed videos.

Derived from the committed frames (read back from the ``frames`` table) and SHARDS_DIR's manifest
and transcripts (:mod:`egoindex.dataset.layout`), in buckets of ``VIDEOS_PER_BUCKET`` videos: a
bucket's fragments are written with a "done" mark (``_build/derived/{bucket}.json``), and the
buckets are then committed in one commit per table, idempotently, like the frames.

* clips: the sliding windows of :func:`egoindex.model.pooling.pool_clips` (the one clip-window
  rule); vector = the normalised mean of the member frames for a frame model, or, for a clip
  checkpoint, its temporal head over ``num_frames`` of them (TSN segment middles,
  ``Embedder.encode_windows``) taken from the frames table's vectors, so nothing is decoded twice
  and the frames are exactly the ones the clip model's image tower embedded; ``text`` joins the
  overlapping utterances; ``speaker``: the overlap rule of :mod:`egoindex.media.speakers` with the
  overlapping utterances as the turns (the speaker whose utterances cover most of the window);
* utterances: Whisper's text embedded with the text tower, with the transcript's speaker;
* videos: one row per video from the manifest (duration, geometry, frame and utterance counts)
  and its participant (SHARDS_DIR's ``participants.json``: child, age, date, location, the other
  columns as JSON in ``participant``).

Blackouts (``egoindex redact``; :mod:`egoindex.dataset.blackouts`): the utterances they hide are
left out of the utterances, the clips' text and the videos' counts, and the clip windows they hide
(meeting a range or a hidden utterance) are not written.

Every vector row also carries its video's ``child_id`` and ``age_days``
(:func:`egoindex.build.frames.participant_columns`), null without a participant.
"""

from __future__ import annotations

import json
from typing import Any

import lancedb
import numpy as np

from egoindex.build.config import BuildConfig, BuildLayout, BuildSummary
from egoindex.core import failpoints
from egoindex.core.fsutil import read_json
from egoindex.core.progress import progress_bar
from egoindex.build.frames import participant_columns
from egoindex.build.stage import drop, save
from egoindex.dataset.blackouts import Blackouts, read_blackouts
from egoindex.dataset.layout import read_participants, read_transcript
from egoindex.media.speakers import Turn, TurnIndex
from egoindex.model.embed import Embedder, encode_clip_windows
from egoindex.store.filters import Filters
from egoindex.store.schema import vectors_of
from egoindex.store.writer import commit_fragments, fragments_present, write_fragments

VIDEOS_PER_BUCKET = 256


def bucket_name(bucket: list[str]) -> str:
    """A bucket's unit name (its first and last video and its size): the ``unit`` of its rows."""
    return f"{bucket[0]}_{bucket[-1]}_{len(bucket)}"


def clip_rows(uid: str, split: str, times: np.ndarray, vecs: np.ndarray, duration: float, utts: list[dict[str, Any]],
              seconds: float, stride: float,
              embedder: Embedder | None = None) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Clips of one video: rows and their vectors (empty windows are skipped). ``text`` joins the
    utterances that overlap the window, ``speaker`` is the one whose utterances cover most of it
    (module docstring). Vectors: ``embedder``'s clip encoder
    (:func:`egoindex.model.embed.encode_clip_windows`), the frame mean without one."""
    pooled = encode_clip_windows(embedder, times, vecs, 0.0, duration, seconds, stride)
    said = TurnIndex([Turn(float(u["start"]), float(u["end"]), str(u["speaker"])) for u in utts if u.get("speaker")])
    rows = []
    for (s, e), n in zip(pooled.windows, pooled.n_frames):
        text = " ".join(u["text"] for u in utts if u["start"] < e and u["end"] > s)
        rows.append({"video_uid": uid, "start": s, "end": e, "n_frames": n, "split": split, "text": text,
                     "speaker": said.speaker_of(s, e)})
    return rows, pooled.vectors


def utterance_row(uid: str, split: str, u: dict[str, Any], unit: str) -> dict[str, Any]:
    """An utterances row from one transcript segment."""
    return {"utterance_id": u["id"], "video_uid": uid, "start": float(u["start"]), "end": float(u["end"]),
            "split": split, "text": u["text"].strip(), "no_speech_prob": float(u.get("no_speech_prob", 0.0)),
            "avg_logprob": float(u.get("avg_logprob", 0.0)),
            "compression_ratio": float(u.get("compression_ratio", 0.0)),
            "unit": unit, "speaker": u.get("speaker")}


def video_row(uid: str, m: dict[str, str], duration: float, n_frames: int, n_utterances: int,
              unit: str, participant: dict[str, Any] | None = None) -> dict[str, Any]:
    """A videos row from the manifest's record of the video and its participant (or None)."""
    p = participant or {}
    extra = p.get("extra")
    return {"video_uid": uid, "source": m.get("source", ""), "split": m.get("split", ""), "duration": duration,
            "width": int(m.get("width") or 0), "height": int(m.get("height") or 0),
            "native_fps": float(m.get("native_fps") or 0.0), "n_frames": n_frames, "n_utterances": n_utterances,
            "unit": unit, **participant_columns(p), "date": p.get("date"), "location": p.get("location"),
            "participant": json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None}


def write_bucket(cfg: BuildConfig, layout: BuildLayout, frames: Any, embedder: Embedder, bucket: list[str],
                 manifest: dict[str, dict[str, str]], participants: dict[str, dict[str, Any]] | None = None,
                 blackouts: Blackouts | None = None) -> None:
    """Write one bucket's derived fragments and its "done" mark (``participants``: by video uid).
    ``blackouts`` (SHARDS_DIR's): their hidden utterances and the clip windows they hide are left out."""
    participants = participants or {}
    blackouts = blackouts or Blackouts()
    name = bucket_name(bucket)
    dim = embedder.dim
    got = frames.search().where(Filters(video_uids=tuple(bucket)).sql("frames")) \
        .select(["video_uid", "t", "vector"]).limit(None).to_arrow()
    uids_col = np.asarray(got["video_uid"].to_pylist(), dtype=object)
    times_all = got["t"].to_numpy()
    vecs_all = vectors_of(got["vector"], dim)
    c_rows, c_vecs, u_rows, u_texts, v_rows = [], [], [], [], []
    for uid in bucket:
        m = manifest.get(uid, {})
        split = m.get("split", "")
        sel = uids_col == uid
        order = np.argsort(times_all[sel], kind="stable")
        times, vecs = times_all[sel][order], vecs_all[sel][order]
        utts = read_transcript(cfg.shards, uid)
        hidden = [(float(u["start"]), float(u["end"])) for u in utts if blackouts.hides_utterance(uid, u)]
        utts = [u for u in utts if not blackouts.hides_utterance(uid, u)]
        duration = float(m.get("duration_s") or (times.max() if len(times) else 0.0))
        rows, cv = clip_rows(uid, split, times, vecs, duration, utts, cfg.clip_seconds, cfg.clip_stride, embedder)
        if blackouts.of(uid):
            keep = [i for i, r in enumerate(rows) if not blackouts.hides_window(uid, r["start"], r["end"], hidden)]
            rows, cv = [rows[i] for i in keep], cv[keep]
        person = participant_columns(participants.get(uid))
        for r in rows:
            r["unit"] = name
            r.update(person)
        c_rows += rows
        c_vecs.append(cv)
        for u in utts:
            u_rows.append({**utterance_row(uid, split, u, name), **person})
            u_texts.append(u["text"].strip())
        v_rows.append(video_row(uid, m, duration, int(sel.sum()), len(utts), name, participants.get(uid)))
    u_vecs = embedder.encode_texts(u_texts) if u_texts else np.zeros((0, dim), np.float32)
    save(layout, layout.bucket_mark(name), {
        "videos": bucket,
        "clips": write_fragments(layout, "clips", c_rows, np.concatenate(c_vecs) if c_vecs else None, dim),
        "utterances": write_fragments(layout, "utterances", u_rows, u_vecs, dim),
        "videos_rows": write_fragments(layout, "videos", v_rows, None, dim),
    })
    failpoints.hit("build-derived-done")


def bucket_present(layout: BuildLayout, mark: dict[str, Any]) -> bool:
    """Whether a bucket's fragments (clips, utterances, videos) are all still on disk."""
    return all(fragments_present(layout, table, mark[key])
               for table, key in (("clips", "clips"), ("utterances", "utterances"), ("videos", "videos_rows")))


def build_derived(cfg: BuildConfig, layout: BuildLayout, embedder: Embedder, new_videos: list[str],
                  manifest: dict[str, dict[str, str]], summary: BuildSummary) -> None:
    """Stage 3: clips, utterances and videos rows of ``new_videos``, bucket by bucket, then one
    commit per table."""
    if not new_videos:
        return
    frames = lancedb.connect(layout.lance_uri, storage_options=layout.storage_options).open_table("frames")
    participants = read_participants(cfg.shards)
    blackouts = read_blackouts(cfg.shards)
    buckets = [new_videos[i:i + VIDEOS_PER_BUCKET] for i in range(0, len(new_videos), VIDEOS_PER_BUCKET)]
    with progress_bar(enabled=cfg.progress) as prog:
        task = prog.add_task("clips and utterances", total=len(new_videos))
        for bucket in buckets:
            mark = layout.bucket_mark(bucket_name(bucket))
            if mark.is_file() and not bucket_present(layout, read_json(mark)):
                drop(layout, mark)  # a redaction since the kill removed its fragments: write it again
            if not mark.is_file():
                write_bucket(cfg, layout, frames, embedder, bucket, manifest, participants, blackouts)
            prog.advance(task, len(bucket))
    units = [bucket_name(b) for b in buckets]
    marks = [read_json(layout.bucket_mark(u)) for u in units]
    for table, key in (("clips", "clips"), ("utterances", "utterances"), ("videos", "videos_rows")):
        commit_fragments(layout, table, [d for m in marks for d in m[key]], embedder.dim, "unit", units)
    summary.videos_added = len(new_videos)
