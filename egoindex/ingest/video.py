"""Ingest stage 1, one video: caption (Whisper or a captions file), sample frames, pair them, stage the samples.

:func:`process_video` turns one video into ``_ingest/staging/{uid}.tar`` (its samples, in frame
order) and ``transcripts/{uid}.json``, and returns the video's record; the caller writes the
record, whose presence marks the video finished. A video that cannot be used is a record with
status ``skipped`` (nothing to keep: no audio, no frames, a non-UTF-8 name, truncated) or
``failed`` (a broken file), with a reason a person can act on, never an exception that stops the
corpus. Each staged sample is three members: ``jpg``, ``txt`` (the caption, empty without speech)
and ``json`` (:func:`sample_json`); packing sends captioned samples to the pair shards and the
others, without ``txt``, to the uncaptioned shards (:mod:`egoindex.ingest.pack`). SHARDS_DIR's
blackouts (``egoindex redact``; the rule: :mod:`egoindex.dataset.blackouts`) are honoured here:
a hidden frame is not staged and a hidden utterance not written to the transcript.

Captions come from Whisper, or, for a video that ``--transcripts`` names, from that file
(:mod:`egoindex.media.captions`): then its audio is neither decoded nor needed (a video without
an audio stream is kept), and with ``--no-whisper`` the other videos keep their frames with
empty captions. The pairing rule is the same for both (:mod:`egoindex.ingest.pairing`).

:func:`init_worker` / :func:`run_in_worker` run the same in a ``spawn`` process pool, one
Whisper model per worker, reporting progress through a queue.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from egoindex.core import failpoints
from egoindex.dataset.blackouts import read_blackouts
from egoindex.dataset.layout import NO_SPEAKER, ShardsLayout, is_captioned, write_transcript, write_video_record
from egoindex.dataset.layout import covered_seconds as layout_covered_seconds
from egoindex.dataset.layout import speech_seconds_by_speaker as layout_speech_by_speaker
from egoindex.dataset.shards import ShardWriter
from egoindex.errors import VideoError
from egoindex.ingest.config import IngestConfig
from egoindex.ingest.pairing import Pair, pair_frames
from egoindex.media.discover import VideoFile, undecodable_name
from egoindex.media.frames import DecodeStats, SampledFrame, iter_frames, probe
from egoindex.media.speakers import Turn, attach_speakers
from egoindex.media.quality import reason_kind
from egoindex.media.speech import Transcriber, Utterance, load_audio

#: ``report(kind, amount)``: ``("frames", n)`` frames written, ``("audio", s)`` seconds transcribed.
Report = Callable[[str, float], None]


def fingerprint(path: Path) -> dict[str, int]:
    """Size and mtime: a video whose fingerprint changed since its record is redone on a rerun."""
    st = path.stat()
    return {"size_bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def video_record(v: VideoFile, split: str, part: int, status: str, reason: str = "", **extra: Any) -> dict[str, Any]:
    """A video's record: who it is, where it goes, its status and reason, its fingerprint, ``extra``."""
    rec = {"video_uid": v.video_uid, "source": v.source, "split": split, "part": part, "status": status,
           "reason": reason}
    rec.update(fingerprint(v.path) if v.path.exists() else {})
    rec.update(extra)
    return rec


def sample_json(v: VideoFile, split: str, frame: SampledFrame, pair: Pair | None) -> dict[str, Any]:
    """The ``json`` member of a sample: the frame's times and size, and its utterance (with the
    pairing's match kind, gap, where the caption came from, Whisper scores, and the Ego4D verb /
    noun tags when the caption file had them, its speaker when known) or None."""
    d: dict[str, Any] = {
        "video_uid": v.video_uid,
        "source": v.source,
        "t": frame.t,
        "frame_index": frame.index,
        "pts_time": frame.pts_time,
        "split": split,
        "width": frame.width,
        "height": frame.height,
        "utterance": None,
    }
    if pair is not None:
        u: Utterance = pair.utterance
        d["utterance"] = {
            "id": u.id, "start": u.start, "end": u.end, "match": pair.match, "gap": pair.gap,
            "no_speech_prob": u.no_speech_prob, "avg_logprob": u.avg_logprob,
            "compression_ratio": u.compression_ratio, "source": u.source,
        }
        if u.confidence is not None:
            d["utterance"]["confidence"] = u.confidence
        if u.tag_verb is not None:
            d["utterance"]["tag_verb"] = u.tag_verb
        if u.tag_noun is not None:
            d["utterance"]["tag_noun"] = u.tag_noun
        if u.speaker is not None:
            d["utterance"]["speaker"] = u.speaker
    return d


def covered_seconds(utts: list[Utterance]) -> float:
    """Seconds covered by at least one utterance (:func:`egoindex.dataset.layout.covered_seconds`,
    the record's rule, which a redaction recomputes too)."""
    return layout_covered_seconds((u.start, u.end) for u in utts)


def speech_seconds_by_speaker(utts: list[Utterance]) -> dict[str, float]:
    """The manifest's ``speech_seconds_by_speaker`` of the kept utterances
    (:func:`egoindex.dataset.layout.speech_seconds_by_speaker`)."""
    return layout_speech_by_speaker((u.speaker, u.start, u.end) for u in utts if u.kept)


class _Skip(Exception):
    """Inside :func:`process_video`: stop this video and record it as skipped with this reason."""


def process_video(v: VideoFile, split: str, part: int, cfg: IngestConfig, layout: ShardsLayout,
                  transcriber: Transcriber | None, report: Report,
                  captions: list[Utterance] | None = None, turns: list[Turn] | None = None) -> dict[str, Any]:
    """Stage 1 for one video; always returns a record (ok / skipped / failed), never raises VideoError.

    ``captions``: the video's utterances from the captions file (then Whisper is not used), else
    None: Whisper's, or none at all when ``transcriber`` is None (``--no-whisper``). ``turns``:
    the video's speaker turns (``--rttm``), which give its utterances their speaker
    (:func:`egoindex.media.speakers.attach_speakers`: a transcript's own speaker stays)."""
    t0 = time.perf_counter()
    if undecodable_name(v.path):  # its source (shown escaped) would not lead back to the file
        return video_record(v, split, part, "skipped", "bad-name: the file name is not valid UTF-8 (shown with \\x "
                            "escapes); rename the file to UTF-8 to ingest it")
    try:
        info = probe(v.path)
    except VideoError as e:
        status = "skipped" if e.kind in ("empty", "no-video-stream") else "failed"
        return video_record(v, split, part, status, f"{e.kind}: {e}")
    except OSError as e:
        return video_record(v, split, part, "failed", f"io-error: {e}")
    base = {"duration_s": round(info.duration, 3), "width": info.width, "height": info.height,
            "rotation": info.rotation, "native_fps": round(info.native_fps, 3) if info.native_fps else None,
            "codec": info.codec}
    whisper = captions is None and not cfg.no_whisper
    if whisper and not info.has_audio and not cfg.allow_no_audio:
        return video_record(v, split, part, "skipped",
                            "no-audio: no audio stream (use --allow-no-audio to keep its frames)", **base)

    utts: list[Utterance] = list(captions or [])
    meta: dict[str, Any] = {"audio_seconds": 0.0, "voiced_seconds": 0.0}
    t_audio = time.perf_counter()
    if whisper and info.has_audio:
        if transcriber is None:
            raise ValueError("process_video needs a Transcriber for a video without file captions")
        try:
            audio = load_audio(v.path)
        except Exception as e:  # PyAV raises many kinds for broken audio; a bad sample is a record
            return video_record(v, split, part, "failed", f"audio-error: cannot decode audio: {e}", **base)
        if audio.size:
            utts, meta = transcriber.transcribe(audio, v.video_uid)
        report("audio", len(audio) / 16000)
    t_audio = time.perf_counter() - t_audio
    if turns:
        utts = attach_speakers(utts, turns)
    # redacted ranges (egoindex redact) never come back: their frames are not staged, their
    # utterances not written (the rule: egoindex.dataset.blackouts)
    blackouts = read_blackouts(layout.root)
    hidden = 0

    stats = DecodeStats()
    writer = ShardWriter(layout.staged(v.video_uid))
    frames = captioned = 0
    by_speaker: dict[str, int] = {}  # captioned frames per speaker: `train --speakers` counts its epoch with them
    pending: list[SampledFrame] = []

    def flush() -> None:
        nonlocal frames, captioned, hidden
        for frame, pair in zip(pending, pair_frames([p.t for p in pending], utts, cfg.max_gap)):
            txt = (pair.utterance.text if pair else "").encode("utf-8")
            meta = sample_json(v, split, frame, pair)
            if blackouts.hides_sample(meta):
                hidden += 1
                continue
            writer.write(f"{v.video_uid}_{frame.index:06d}", {
                "jpg": frame.jpeg,
                "txt": txt,
                "json": json.dumps(meta, ensure_ascii=False).encode("utf-8"),
            })
            frames += 1
            if is_captioned(txt):  # the rule that sends it to a pair shard
                captioned += 1
                who = pair.utterance.speaker if pair and pair.utterance.speaker is not None else NO_SPEAKER
                by_speaker[who] = by_speaker.get(who, 0) + 1
        report("frames", len(pending))
        pending.clear()

    t_frames = time.perf_counter()
    try:
        for frame in iter_frames(v.path, cfg.fps, cfg.short_side, cfg.jpeg_quality, stats, cfg.sampling):
            pending.append(frame)
            if len(pending) >= 32:
                flush()
        flush()
        if frames == 0 and hidden:
            raise _Skip("blacked-out: every sampled frame is in a blackout range (egoindex redact)")
        if frames == 0:
            raise _Skip("no-frames: no frame could be sampled")
        if any(w.startswith("truncated") for w in stats.warnings) and not cfg.keep_truncated:
            first = sorted(stats.warnings, key=lambda w: not w.startswith("truncated"))  # "truncated: decoded ..."
            raise _Skip("; ".join(first) + " (use --keep-truncated to keep the decodable part)")
        writer.close()
    except _Skip as s:
        writer.abort()
        return video_record(v, split, part, "skipped", str(s), **base)
    except VideoError as e:
        writer.abort()
        return video_record(v, split, part, "failed", f"{e.kind}: {e}", **base)
    except Exception as e:  # a decoder crash mid-file must not stop the corpus
        writer.abort()
        return video_record(v, split, part, "failed", f"decode-error: {type(e).__name__}: {e}", **base)
    t_frames = time.perf_counter() - t_frames

    utts = [u for u in utts if not blackouts.hides_span(v.video_uid, u.start, u.end)]
    kept = [u for u in utts if u.kept]
    # a video's file captions come from one file, so from one format (a folder may mix formats)
    caption_source = (captions[0].source if captions else cfg.captions_format) if captions is not None \
        else "whisper" if whisper else "none"
    write_transcript(layout, v.video_uid, {
        "video_uid": v.video_uid, "source": v.source, "captions": caption_source,
        "model": transcriber.name if whisper and transcriber is not None else None, **meta,
        "thresholds": asdict(cfg.thresholds), "utterances": [u.to_json() for u in utts],
    })
    warnings = list(stats.warnings)
    if captions is not None:
        if not kept:
            warnings.append(f"no caption in the {caption_source} file")
    elif not whisper:
        warnings.append("not in the captions file and --no-whisper: frames kept with empty captions")
    elif not info.has_audio:
        warnings.append("no audio stream: frames kept with empty captions")
    elif not kept:
        warnings.append("no speech kept (silence or all utterances filtered)")
    return video_record(
        v, split, part, "ok", "", **base, captions=caption_source, frames=frames, utterances=len(kept),
        utterances_dropped=len(utts) - len(kept),
        dropped_by_reason=dict(sorted(Counter(reason_kind(u.drop_reason or "") for u in utts if not u.kept).items())),
        language=meta.get("language"), language_probability=meta.get("language_probability"),
        speech_s=round(covered_seconds(kept), 3), speech_seconds_by_speaker=speech_seconds_by_speaker(kept),
        audio_s=round(float(meta.get("audio_seconds", 0.0)), 3),
        captioned_frames=captioned, captioned_frames_by_speaker=dict(sorted(by_speaker.items())), warnings=warnings,
        timing_s={"audio": round(t_audio, 3), "frames": round(t_frames, 3),
                  "total": round(time.perf_counter() - t0, 3)},
        **({"blacked_out_frames": hidden} if blackouts.of(v.video_uid) else {}),
    )


def finish_video(v: VideoFile, split: str, part: int, cfg: IngestConfig, layout: ShardsLayout,
                 transcriber: Transcriber | None, report: Report,
                 captions: list[Utterance] | None = None, turns: list[Turn] | None = None) -> dict[str, Any]:
    """:func:`process_video`, then write its record (the video is finished from then on)."""
    rec = process_video(v, split, part, cfg, layout, transcriber, report, captions, turns)
    write_video_record(layout, rec)
    failpoints.hit("video-done")
    return rec


# ----------------------------------------------------------------------------------------------
# Worker processes (spawned: one Transcriber each unless no video needs Whisper, kept in this module's state)


_WORKER: dict[str, Any] = {}


def init_worker(cfg: dict[str, Any], layout_root: str, device: str, compute_type: str, batch_size: int,
                cpu_threads: int, q: Any, load_whisper: bool = True) -> None:
    """Process-pool initializer: load this worker's Whisper model once (unless ``load_whisper`` is
    False: every video has file captions or ``--no-whisper``); progress goes to ``q``."""
    c = IngestConfig(**cfg)
    _WORKER["cfg"] = c
    _WORKER["layout"] = ShardsLayout(Path(layout_root))
    _WORKER["transcriber"] = Transcriber(c.whisper_model, device, compute_type, cpu_threads, batch_size,
                                         c.language, c.thresholds) if load_whisper else None
    _WORKER["queue"] = q


def run_in_worker(v: VideoFile, split: str, part: int, captions: list[Utterance] | None = None,
                  turns: list[Turn] | None = None) -> dict[str, Any]:
    """Process-pool task: :func:`finish_video` with this worker's model; returns the record."""
    q = _WORKER["queue"]
    return finish_video(v, split, part, _WORKER["cfg"], _WORKER["layout"], _WORKER["transcriber"],
                        lambda kind, n: q.put((kind, n)), captions, turns)
