"""The two exports behind ``egoindex export nlq|mq``: annotations in, feature rows per video, the baseline's files out.

Why a runner module: it is the only place that joins the parts -- it reads the annotation files
(:mod:`~egoindex.export.nlq`, :mod:`~egoindex.export.moments`), resolves their videos in the
backend's catalog (:mod:`~egoindex.export.backend`), makes each video's rows once
(:mod:`~egoindex.export.rows`), cuts them to the annotated clips and hands them to the layout
writers (:mod:`~egoindex.export.vslnet`, :mod:`~egoindex.export.vsgn`).  Every export also writes
``export_summary.json``: the settings, the model and checkpoint sha256, and for every video which
source its rows came from and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.core.fsutil import write_json
from egoindex.core.progress import counting
from egoindex.errors import ExportError
from egoindex.export.backend import Backend, VideoRef, resolve_videos
from egoindex.export.grid import DEFAULT_FRAMES_PER_WINDOW, FeatureGrid
from egoindex.export.moments import build_clip_annotations, load_moments
from egoindex.export.nlq import iter_nlq_queries, load_nlq_annotations, split_name_of
from egoindex.export.rows import FeatureMaker, VideoFeatures
from egoindex.export.vsgn import write_vsgn
from egoindex.export.vslnet import write_vslnet
from egoindex.export.windows import vslnet_clip_slice

__all__ = ["SUMMARY_FILE", "export_nlq", "export_mq", "make_video_features"]

SUMMARY_FILE = "export_summary.json"


def make_video_features(maker: FeatureMaker, refs: Sequence[VideoRef], progress: bool) -> dict[str, VideoFeatures]:
    """uid -> the rows of every video of ``refs`` (a progress bar over videos when ``progress``)."""
    out: dict[str, VideoFeatures] = {}
    with counting("video features", len(refs), enabled=progress) as advance:
        for vf in maker.features(refs):
            out[vf.uid] = vf
            advance(1)
    return out


def _prepare(backend: Backend, wanted: Sequence[str] | None, strict: bool) -> tuple[dict[str, VideoRef], list[str]]:
    """The videos to export: all of the catalog, or the annotated ones found in it (+ the uids not found)."""
    if wanted is None:
        refs = dict(backend.catalog)
        if not refs:
            raise ExportError("no videos to export (empty store or videos folder)")
        return refs, []
    found, missing = resolve_videos(wanted, backend.catalog)
    if missing and strict:
        where = f"store {backend.store.root}" if backend.store is not None else f"videos folder {backend.videos_dir}"
        raise ExportError(f"{len(missing)} annotated video(s) are not in the {where}, e.g. {missing[:3]} "
                          "(pass --no-strict to export the others)")
    if not found:
        raise ExportError("none of the annotated videos is available")
    return found, missing


def export_nlq(
    backend: Backend,
    out_dir: str | Path,
    annotations: Sequence[str | Path] = (),
    grid: FeatureGrid | None = None,
    frames_per_window: int | None = DEFAULT_FRAMES_PER_WINDOW,
    source: str = "auto",
    decode_fps: float | None = None,
    strict: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """VSLNet features (+ dataset JSONs and query-text features when ``annotations`` are given).

    With annotation files (``nlq_train.json`` ...; the split is read from the file name), every
    annotated clip gets ``{clip_uid}.pt``: the rows of its video's grid that VSLNet's preparation
    keeps (:func:`~egoindex.export.windows.vslnet_clip_slice`, cut to the video), the split JSONs
    carry ``fps = rate`` and the official ``num_frames`` (train/val/test always; ``{}`` for a split
    without a file; :mod:`~egoindex.export.vslnet`), and every non-empty query text is
    embedded with the model's text tower (``text/sentence.{npy,pt}``, keyed by the query text as
    written in the annotations).  Without annotations every video gets ``{video_uid}.pt``.
    Writes ``export_summary.json`` (settings, per-video source and reason) and returns it.
    """
    grid = grid or FeatureGrid()
    maker = FeatureMaker(backend, grid, frames_per_window, source, decode_fps)
    out = Path(out_dir)
    loaded: list[dict[str, Any]] = []
    names: list[str] = []
    for p in annotations:
        name = split_name_of(p, "nlq_")
        loaded.append(load_nlq_annotations(p, require_times=name != "test"))
        names.append(name)
    if len(set(names)) != len(names):
        raise ExportError(f"annotation files must be of distinct splits, got {names}")

    wanted = [v["video_uid"] for nlq in loaded for v in nlq["videos"]] if loaded else None
    refs, missing_videos = _prepare(backend, wanted, strict)
    uniq: dict[str, VideoRef] = {}
    for ref in refs.values():
        uniq.setdefault(ref.uid, ref)
    vfeats = make_video_features(maker, list(uniq.values()), progress)

    warnings: list[str] = []
    if loaded:
        features, warnings = _clip_features(loaded, refs, vfeats, grid.rate)
        texts = sorted({q.query for nlq in loaded for q in iter_nlq_queries(nlq) if q.query})
        qvecs = backend.embedder.encode_texts(texts) if texts else np.zeros((0, 1), np.float32)
        query_features = {t: qvecs[i] for i, t in enumerate(texts)} or None
        summary = write_vslnet(out, features, grid.rate, annotations=loaded, query_features=query_features,
                               split_names=names, strict=strict)
    else:
        summary = write_vslnet(out, {uid: vf.features for uid, vf in vfeats.items()}, grid.rate)
    return _finish(out, "nlq", summary, backend, maker, refs, vfeats, missing_videos, warnings,
                   {"annotations": {n: str(p) for n, p in zip(names, annotations)}})


def _clip_features(loaded: Sequence[Mapping[str, Any]], refs: Mapping[str, VideoRef],
                   vfeats: Mapping[str, VideoFeatures], rate: float) -> tuple[dict[str, np.ndarray], list[str]]:
    """clip_uid -> the rows of its video's grid that VSLNet keeps for it (+ warnings for clips past the end).

    A clip listed twice (in two split files) must have the same bounds and video each time."""
    features: dict[str, np.ndarray] = {}
    warnings: list[str] = []
    bounds: dict[str, tuple[float, float, str]] = {}
    for nlq in loaded:
        for video in nlq["videos"]:
            ref = refs.get(video["video_uid"])
            if ref is None:
                continue
            vf = vfeats[ref.uid]
            for clip in video["clips"]:
                cid = clip["clip_uid"]
                s, e = float(clip["video_start_sec"]), float(clip["video_end_sec"])
                if cid in bounds:
                    if bounds[cid] != (s, e, video["video_uid"]):
                        raise ExportError(f"clip {cid} appears with different bounds or videos: "
                                          f"{bounds[cid]} vs {(s, e, video['video_uid'])}")
                    continue
                bounds[cid] = (s, e, video["video_uid"])
                rows = vslnet_clip_slice(s, e, rate)
                n = vf.features.shape[0]
                if rows.start >= n:
                    raise ExportError(f"clip {cid} starts at {s} s, after the end of video {video['video_uid']} "
                                      f"({vf.duration} s, {n} feature rows)")
                if e > vf.duration + 1.0:
                    warnings.append(f"clip {cid} ends at {e} s, past the end of its video ({vf.duration} s)")
                features[cid] = vf.features[rows.start:min(rows.stop, n)]
    return features, warnings


def export_mq(
    backend: Backend,
    out_dir: str | Path,
    moments: Sequence[str | Path],
    grid: FeatureGrid | None = None,
    frames_per_window: int | None = DEFAULT_FRAMES_PER_WINDOW,
    source: str = "auto",
    decode_fps: float | None = None,
    strict: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """VSGN features (``{video_uid}.pt`` [T, D], whole videos) and ``clip_annotations.json``.

    ``moments``: Ego4D ``moments_<split>.json`` files.  Feature files are named by the
    annotation's video uid; ``v_duration`` is the video's duration in the store (or probed from
    the file) and ``fps = T / v_duration``, so VSGN's slice of each clip lands on its rows.
    Writes ``export_summary.json`` and returns it.
    """
    if not moments:
        raise ExportError("give at least one moments annotation file (--moments moments_train.json)")
    grid = grid or FeatureGrid()
    maker = FeatureMaker(backend, grid, frames_per_window, source, decode_fps)
    out = Path(out_dir)
    files = [load_moments(p) for p in moments]
    wanted = [str(v.get("video_uid")) for data in files for v in data["videos"] if isinstance(v, dict)]
    refs, missing_videos = _prepare(backend, wanted, strict)
    uniq: dict[str, VideoRef] = {}
    for ref in refs.values():
        uniq.setdefault(ref.uid, ref)
    vfeats = make_video_features(maker, list(uniq.values()), progress)
    video_features = {vid: vfeats[ref.uid].features for vid, ref in refs.items()}
    durations = {vid: vfeats[ref.uid].duration for vid, ref in refs.items()}
    counts = {vid: int(f.shape[0]) for vid, f in video_features.items()}
    clips: dict[str, dict[str, Any]] = {}
    for data in files:
        for cid, entry in build_clip_annotations(data, durations, counts).items():
            if cid in clips:
                clips[cid]["annotations"].extend(entry["annotations"])
            else:
                clips[cid] = entry
    summary = write_vsgn(out, video_features, clips, strict=strict)
    return _finish(out, "mq", summary, backend, maker, refs, vfeats, missing_videos, [],
                   {"moments": [str(p) for p in moments]})


def _finish(out: Path, task: str, summary: dict[str, Any], backend: Backend, maker: FeatureMaker,
            refs: Mapping[str, VideoRef], vfeats: Mapping[str, VideoFeatures], missing: list[str],
            warnings: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """Write ``export_summary.json`` (settings, sources, per-video records, warnings) and return it."""
    by_source: dict[str, int] = {}
    for vf in vfeats.values():
        by_source[vf.source] = by_source.get(vf.source, 0) + 1
    names = {ref.uid: name for name, ref in refs.items()}
    videos = {}
    for uid, vf in vfeats.items():
        rec = vf.record()
        rec["file"] = refs[names[uid]].source if uid in names else ""
        if names.get(uid, uid) != uid:
            rec["annotation_video_uid"] = names[uid]
        videos[uid] = rec
    full = {"task": task, **backend.info(), **maker.settings(), **extra, "export": summary,
            "sources": by_source, "videos": videos, "missing_videos": missing,
            "warnings": warnings + [f"{u}: {w}" for u, vf in vfeats.items() for w in vf.warnings]}
    write_json(out / SUMMARY_FILE, full)
    full["summary_file"] = str(out / SUMMARY_FILE)
    return full
