"""Redaction of a SHARDS_DIR: take what blackouts hide out of the shards, staging, transcripts and records.

What a blackout hides is :class:`egoindex.dataset.blackouts.Blackouts`' rule; this module applies
it to every SHARDS_DIR file that holds content (the frame and clip series, ``_ingest/staging/``
tars, ``transcripts/``) and then brings the records that count that content back in line (pack
records, video records, ``sizes.json`` x 3, ``shards.csv``, ``manifest.csv``).

Why a plan: the record updates must be *absolute* (``frames = 31``, not "minus 9"), so that a
step done twice after a kill gives the same result; :func:`plan_shards` reads the affected files
once, before anything changes, and returns the target of every record as plain JSON (frame keys,
counts and digests: no content), which the redaction journal keeps. Every other function here is
an idempotent step over that plan: run again, it finds nothing left to remove and changes nothing.

A concurrent reader of a shard (a training job, a build) keeps the file it opened: a rewritten
shard is a new file renamed over the old name (:func:`egoindex.dataset.shards.rewrite_shard`),
so each open sees either the whole old shard or the whole new one; while the redaction runs, some
shards of a SHARDS_DIR may be rewritten and others not yet, and ``sizes.json`` is rewritten after
all of them (docs/reliability.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import read_json, write_json
from egoindex.dataset.blackouts import Blackout, Blackouts, HiddenUtterance, utterance_digest
from egoindex.dataset.layout import (NO_SPEAKER, SPEAKER_STATS, ShardsLayout, Where, as_layout, covered_seconds,
                                     is_captioned, is_uncaptioned_name, publish_summaries, read_clip_sizes,
                                     read_manifest, read_pack_records, read_sizes, read_video_record,
                                     speech_seconds_by_speaker, write_clip_sizes, write_pack_record, write_sizes,
                                     write_video_record)
from egoindex.dataset.shards import Rewrite, list_clip_shards, list_shards, read_shard, rewrite_shard

#: Record fields a redaction recomputes (the others: status, fingerprint, geometry, stay).
RECORD_COUNTS = ("frames", "captioned_frames", "captioned_frames_by_speaker", "utterances", "utterances_dropped",
                 "speech_s", "speech_seconds_by_speaker")


def _meta(sample: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(sample["json"])


def _speaker(meta: dict[str, Any]) -> str:
    return ((meta.get("utterance") or {}).get("speaker")) or NO_SPEAKER


def affected_shards(where: Where, uids: Iterable[str]) -> list[Path]:
    """The shards that may hold samples of ``uids``: those whose pack-record rows name one of them
    (frame series first, then clips); every shard when SHARDS_DIR has no pack records (shards made
    without ``egoindex ingest``)."""
    lay, want = as_layout(where), set(uids)
    packs = read_pack_records(lay)
    if not packs:
        return [*list_shards(lay), *list_clip_shards(lay)]
    frames = sorted({s["name"] for r in packs for s in r["shards"] if want & set(s["videos"])})
    clips = sorted({s["name"] for r in packs for s in r.get("clips", []) if want & set(s["videos"])})
    return [lay.shard(n) for n in (*frames, *clips) if lay.shard(n).is_file()]


def packed_videos(where: Where) -> set[str]:
    return {u for r in read_pack_records(where) for u in r["videos"]}


def plan_shards(where: Where, blackouts: Blackouts, uids: Iterable[str]) -> dict[str, Any]:
    """Read what ``blackouts`` hide of the videos ``uids`` and return the redaction's targets:

    ``shards``: ``{name: {"count", "dropped", "videos", "frames"}}`` after the rewrite (count 0:
    removed);
    ``staged`` / ``transcripts``: the uids whose staged tar / transcript hold hidden content;
    ``hidden_keys``: ``{uid: [frame keys]}`` (what the store's frames table is matched against);
    ``hidden_utterances``: spans and text digests (:class:`HiddenUtterance`); ``records``: each
    video record's new counts (:data:`RECORD_COUNTS`); ``packs``: each pack record's new
    ``clip_stats``; ``removed``: what goes, by kind (pairs, uncaptioned, clips, staged, utterances)."""
    lay = as_layout(where)
    uids = sorted(set(uids))
    packed = packed_videos(lay)
    plan: dict[str, Any] = {"shards": {}, "staged": [], "transcripts": [], "hidden_keys": {}, "hidden_utterances": [],
                            "records": {}, "packs": {}, "removed": {"pairs": 0, "uncaptioned": 0, "clips": 0,
                                                                    "staged": 0, "utterances": 0}}
    hidden_frames = {u: 0 for u in uids}
    hidden_captioned: dict[str, dict[str, int]] = {u: {} for u in uids}
    hidden_clips: dict[str, dict[str, int]] = {}  # clip shard -> speaker -> hidden clips
    keys: dict[str, set[str]] = {u: set() for u in uids}
    shards = affected_shards(lay, uids)
    frame_shards = [p for p in shards if not p.name.startswith("clips-")]
    clip_shards = [p for p in shards if p.name.startswith("clips-")]
    for p in frame_shards:
        count, dropped, videos = 0, 0, set()
        for key, sample in read_shard(p):
            if key is None:
                break
            meta = _meta(sample)  # type: ignore[arg-type]
            uid = str(meta.get("video_uid"))
            if blackouts.hides_sample(meta):
                dropped += 1
                keys.setdefault(uid, set()).add(key)
                plan["removed"]["uncaptioned" if is_uncaptioned_name(p.name) else "pairs"] += 1
                if uid in hidden_frames:
                    hidden_frames[uid] += 1
                    if is_captioned(sample.get("txt")):  # type: ignore[arg-type]
                        who = _speaker(meta)
                        hidden_captioned[uid][who] = hidden_captioned[uid].get(who, 0) + 1
            else:
                count += 1
                videos.add(uid)
        plan["shards"][p.name] = {"count": count, "dropped": dropped, "videos": sorted(videos), "frames": None}
    for u in uids:  # a video staged but not packed yet (or kept with --keep-staging)
        staged = lay.staged(u)
        if not staged.is_file():
            continue
        found = 0
        for key, sample in read_shard(staged):
            if key is None:
                break
            meta = _meta(sample)  # type: ignore[arg-type]
            if blackouts.hides_sample(meta):
                found += 1
                keys[u].add(key)
                if u not in packed:
                    hidden_frames[u] += 1
                    if is_captioned(sample.get("txt")):  # type: ignore[arg-type]
                        who = _speaker(meta)
                        hidden_captioned[u][who] = hidden_captioned[u].get(who, 0) + 1
        if found:
            plan["staged"].append(u)
            plan["removed"]["staged"] += found
    hidden = frozenset(k for ks in keys.values() for k in ks)
    for p in clip_shards:
        count, dropped, frames, videos = 0, 0, 0, set()
        for key, sample in read_shard(p):
            if key is None:
                break
            meta = _meta(sample)  # type: ignore[arg-type]
            if blackouts.hides_sample(meta, hidden):
                dropped += 1
                plan["removed"]["clips"] += 1
                who = ((meta.get("utterance") or {}).get("speaker")) or NO_SPEAKER
                hidden_clips.setdefault(p.name, {})[who] = hidden_clips.setdefault(p.name, {}).get(who, 0) + 1
            else:
                count += 1
                frames += len(meta.get("times") or [])
                videos.add(str(meta.get("video_uid")))
        plan["shards"][p.name] = {"count": count, "dropped": dropped, "videos": sorted(videos), "frames": frames}
    plan["hidden_keys"] = {u: sorted(k) for u, k in sorted(keys.items()) if k}

    hidden_kept_utts: dict[str, int] = {}
    for u in uids:
        path = lay.transcript(u)
        utts = read_json(path).get("utterances", []) if path.is_file() else []
        gone = [x for x in utts if blackouts.hides_utterance(u, x)]
        if gone:
            plan["transcripts"].append(u)
            plan["removed"]["utterances"] += len(gone)
        plan["hidden_utterances"] += [HiddenUtterance(u, float(x["start"]), float(x["end"]), bool(x.get("kept", True)),
                                                      utterance_digest(str(x.get("text", "")))).to_json() for x in gone]
        hidden_kept_utts[u] = sum(1 for x in gone if x.get("kept", True) and str(x.get("text", "")).strip())
        rec = read_video_record(lay, u)
        if rec is not None:
            left = [x for x in utts if not blackouts.hides_utterance(u, x)]
            plan["records"][u] = record_targets(rec, blackouts, left, hidden_frames.get(u, 0), hidden_captioned[u],
                                                has_transcript=path.is_file())
    plan["packs"] = pack_targets(lay, uids, hidden_clips, hidden_kept_utts)
    return plan


def record_targets(rec: dict[str, Any], blackouts: Blackouts, left: list[dict[str, Any]], hidden_frames: int,
                   hidden_captioned: dict[str, int], has_transcript: bool = True) -> dict[str, Any]:
    """A video record's counts after the redaction (only the fields the record has; the speech
    figures recomputed from the utterances ``left``, by the rules of :mod:`egoindex.dataset.layout`),
    and ``redacted``: the video's blackouts, old and new."""
    kept = [x for x in left if x.get("kept", True)]
    targets: dict[str, Any] = {
        "frames": max(0, int(rec.get("frames") or 0) - hidden_frames),
        "captioned_frames": max(0, int(rec.get("captioned_frames") or 0) - sum(hidden_captioned.values())),
    }
    if has_transcript:
        targets.update({
            "utterances": len(kept), "utterances_dropped": len(left) - len(kept),
            "speech_s": round(covered_seconds((float(x["start"]), float(x["end"])) for x in kept), 3),
            "speech_seconds_by_speaker": speech_seconds_by_speaker(
                (x.get("speaker"), float(x["start"]), float(x["end"])) for x in kept)})
    if "captioned_frames_by_speaker" in rec:
        by = {k: int(v) - hidden_captioned.get(k, 0) for k, v in rec["captioned_frames_by_speaker"].items()}
        targets["captioned_frames_by_speaker"] = {k: v for k, v in sorted(by.items()) if v > 0}
    out = {k: v for k, v in targets.items() if k in rec}
    ranges = {(d["video_uid"], float(d["start"]), d["end"]) for d in rec.get("redacted", [])}
    ranges |= {(b.video_uid, float(b.start), b.end) for b in blackouts.of(str(rec["video_uid"]))}
    out["redacted"] = [Blackout(*r).to_json() for r in sorted(ranges, key=lambda r: (r[0], r[1], r[2] is None,
                                                                                     r[2] or 0.0))]
    return out


def pack_targets(where: Where, uids: list[str], hidden_clips: dict[str, dict[str, int]],
                 hidden_kept_utts: dict[str, int]) -> dict[str, Any]:
    """Each affected pack record's ``clip_stats`` after the redaction, by pack file name: its
    clips (per speaker) less the hidden ones in its clip shards, its utterances less the hidden
    kept ones of its videos, ``without_frames`` their difference (as ingest counts it)."""
    out = {}
    for rec in read_pack_records(where):
        stats = rec.get("clip_stats")
        names = {s["name"] for s in rec.get("clips", [])}
        mine = set(rec["videos"]) & set(uids)
        if stats is None or not mine:
            continue
        by = dict(stats.get(SPEAKER_STATS) or {})
        gone_clips = 0
        for name in names & set(hidden_clips):
            for who, n in hidden_clips[name].items():
                by[who] = by.get(who, 0) - n
                gone_clips += n
        utterances = max(0, int(stats.get("utterances", 0)) - sum(hidden_kept_utts.get(u, 0) for u in mine))
        clips = max(0, int(stats.get("clips", 0)) - gone_clips)
        out[pack_file(rec)] = {**stats, "utterances": utterances, "clips": clips,
                               "without_frames": max(0, utterances - clips),
                               SPEAKER_STATS: {k: v for k, v in sorted(by.items()) if v > 0}}
    return out


def pack_file(rec: dict[str, Any]) -> str:
    """The file name of a pack record (``{split}-{part}-{number}.json``)."""
    return ShardsLayout(".").pack(rec["split"], int(rec["part"]), int(rec["number"])).name


def redact_shard(where: Where, name: str, blackouts: Blackouts, hidden_keys: frozenset[str]) -> Rewrite:
    """Rewrite one shard without what ``blackouts`` hide (clip samples also without a frame in
    ``hidden_keys``); a shard left empty is removed. Idempotent."""
    path = as_layout(where).shard(name)
    if not path.is_file():
        return Rewrite(0, 0, 0, False)
    return rewrite_shard(path, lambda key, s: not blackouts.hides_sample(_meta(s), hidden_keys))


def redact_staged(where: Where, uid: str, blackouts: Blackouts) -> Rewrite:
    """Rewrite a video's staged tar without its hidden frames (kept even when empty: a pack
    still expects the file of a finished, unpacked video). Idempotent."""
    path = as_layout(where).staged(uid)
    if not path.is_file():
        return Rewrite(0, 0, 0, False)
    return rewrite_shard(path, lambda key, s: not blackouts.hides_sample(_meta(s)), remove_empty=False)


def redact_transcript(where: Where, uid: str, blackouts: Blackouts) -> int:
    """Rewrite ``transcripts/{uid}.json`` without its hidden utterances (with their words);
    returns how many went. Idempotent."""
    path = as_layout(where).transcript(uid)
    if not path.is_file():
        return 0
    doc = read_json(path)
    utts = doc.get("utterances", [])
    left = [u for u in utts if not blackouts.hides_utterance(uid, u)]
    if len(left) != len(utts):
        write_json(path, {**doc, "utterances": left})
    return len(utts) - len(left)


def update_pack_records(where: Where, plan: dict[str, Any]) -> None:
    """Pack records' shard and clip rows to the plan's counts, videos and the rewritten files'
    sizes (rows of removed shards dropped), ``clip_stats`` to the plan's. Idempotent. A pack's
    ``videos`` keep every video it packed: that list is what stops a rerun of ingest from packing
    a video twice."""
    lay = as_layout(where)
    targets = plan["shards"]

    def rows(old: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for s in old:
            t = targets.get(s["name"])
            if t is None:
                out.append(s)
                continue
            path = lay.shard(s["name"])
            if t["count"] == 0 or not path.is_file():
                continue
            row = {**s, "count": t["count"], "videos": t["videos"], "bytes": path.stat().st_size}
            if t.get("frames") is not None:
                row["frames"] = t["frames"]
            out.append(row)
        return out

    for rec in read_pack_records(lay):
        if not any(s["name"] in targets for s in (*rec["shards"], *rec.get("clips", []))) \
                and pack_file(rec) not in plan["packs"]:
            continue
        clip_rows = rows(rec["clips"]) if "clips" in rec else None
        write_pack_record(lay, rec["split"], int(rec["part"]), int(rec["number"]), rec["videos"], rows(rec["shards"]),
                          clip_rows, plan["packs"].get(pack_file(rec), rec.get("clip_stats")))


def update_video_records(where: Where, plan: dict[str, Any]) -> None:
    """Video records to the plan's counts, plus ``redacted``: the blackouts applied to the video
    (ranges, no content). Idempotent."""
    lay = as_layout(where)
    for uid, target in plan["records"].items():
        rec = read_video_record(lay, uid)
        if rec is None:
            continue
        new = {**rec, **target}
        if new != rec:
            write_video_record(lay, new)


def publish(where: Where, plan: dict[str, Any]) -> None:
    """The summaries from the updated records (:func:`egoindex.dataset.layout.publish_summaries`,
    the manifest in its current order). A SHARDS_DIR without pack records (shards not made by
    ingest) has only its ``sizes.json`` files brought in line. Idempotent."""
    lay = as_layout(where)
    if read_pack_records(lay):
        videos = [{"video_uid": r["video_uid"], "source": r.get("source", "")} for r in read_manifest(lay)] \
            if lay.manifest.is_file() else []
        publish_summaries(lay, videos)
        return
    targets = plan["shards"]
    if lay.clip_sizes.is_file():
        clips = {k: targets.get(k, {"count": v})["count"] for k, v in read_clip_sizes(lay).items()}
        write_clip_sizes(lay, {k: v for k, v in clips.items() if v})
    if lay.sizes.is_file():
        sizes = {k: targets.get(k, {"count": v})["count"] for k, v in read_sizes(lay).items()}
        write_sizes(lay, {k: v for k, v in sizes.items() if v})
