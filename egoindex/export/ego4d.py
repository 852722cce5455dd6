"""Writers for the Ego4D NLQ (VSLNet) and MQ (VSGN) feature layouts, and their annotation files.

Why: the official baselines in ``EGO4D/episodic-memory`` read features and annotations from fixed
places in fixed shapes.  Writing exactly that lets anyone train or evaluate the unchanged
baselines on egoindex embeddings (our own videos, or Ego4D videos re-embedded by our models).
Every structure below was read off the public code; the file is named at each place.

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
  annotation.  We write ``fps`` = our feature rate and ``num_frames`` = the clip's feature rows,
  because ``data_gen.py`` computes ``duration = num_frames / fps`` and feeds it with the
  ``feature_shapes.json`` row count to ``time_to_index``: with both set from the features the
  seconds -> row mapping is exact whatever rate was used.
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
    out_dir/dataset/{split}.json            per-split dataset JSON (when annotations are given)
    out_dir/text/sentence.npy, sentence.pt  query text -> [1, D] (when query features are given)

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

Ego4D annotation files (field names from the Ego4D docs "Annotation Schemas" page,
``EGO4D/docs`` ``data/annotations-schemas/index.html``): ``nlq_<set>.json`` = ``{version, date,
description, manifest, videos: [{video_uid, split, clips: [{clip_uid, video_start_sec,
video_end_sec, video_start_frame, video_end_frame, clip_start_sec, clip_end_sec, clip_start_frame,
clip_end_frame, source_clip_uid, annotations: [{annotation_uid, language_queries: [{clip_start_sec,
clip_end_sec, video_start_sec, video_end_sec, video_start_frame, video_end_frame, template, query,
slot_x, verb_x, slot_y, verb_y, raw_tags}]}]}]}]}``; ``moments_<set>.json`` = ``{..., videos:
[{video_uid, split, clips: [{clip_uid, video_start_sec, video_end_sec, ..., annotations:
[{annotator_uid, labels: [{start_time, end_time, label, video_start_time, video_end_time,
video_start_frame, video_end_frame, primary}]}]}]}]}`` (label times relative to the clip).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.export.windows import FEATURE_RATE, VSGN_TEMPORAL_SCALE, mq_slice
from egoindex.core.fsutil import atomic_open, read_json, write_json

__all__ = [
    "NLQ_SPLITS",
    "FEATURES_DIR",
    "DATASET_DIR",
    "TEXT_DIR",
    "SHAPES_FILE",
    "CLIP_ANNOTATIONS_FILE",
    "NLQ_TEMPLATE_WHERE_SEEN",
    "NLQQuery",
    "process_question",
    "load_nlq_annotations",
    "validate_nlq_annotations",
    "iter_nlq_queries",
    "vslnet_dataset_split",
    "write_vslnet",
    "build_clip_annotations",
    "write_vsgn",
    "demo_nlq_annotations",
    "demo_moments_annotations",
]

NLQ_SPLITS: tuple[str, ...] = ("train", "val", "test")
FEATURES_DIR = "features"
DATASET_DIR = "dataset"
TEXT_DIR = "text"
SHAPES_FILE = "feature_shapes.json"
CLIP_ANNOTATIONS_FILE = "clip_annotations.json"
QUERY_NPY = "sentence.npy"
QUERY_PT = "sentence.pt"
#: A real Ego4D NLQ template name (as spelled in the annotation files, space before "?").
NLQ_TEMPLATE_WHERE_SEEN = "Objects: In what location did I see object X ?"

# A uid becomes a file stem that VSLNet recovers with split(".")[0]: no dots, no separators.
_UID_RE = re.compile(r"^[A-Za-z0-9_-]+$")


# ----------------------------------------------------------------------------------------------
# shared helpers


def _check_uid(uid: Any, what: str) -> str:
    if not isinstance(uid, str) or not _UID_RE.match(uid):
        raise ValueError(
            f"{what} {uid!r} cannot be a feature file stem: use letters, digits, '-' and '_' only "
            "(VSLNet keys files by the text before the first '.')"
        )
    return uid


def _as_feature_matrix(x: Any, name: str) -> np.ndarray:
    """A contiguous float32 [N, D] copy of ``x``; rejects empty, non-finite and all-zero rows."""
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"features for {name!r} must be a non-empty [N, D] array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"features for {name!r} contain NaN or inf")
    zero = np.flatnonzero(~a.any(axis=1))
    if zero.size:
        raise ValueError(
            f"features for {name!r} have all-zero rows {zero[:5].tolist()}{'...' if zero.size > 5 else ''}; "
            "zero rows look like padding to the models (the EgoVLP extractor defect) -- refusing to write them"
        )
    return a


def _common_dim(mats: Mapping[str, np.ndarray]) -> int:
    dims = {m.shape[1] for m in mats.values()}
    if len(dims) != 1:
        raise ValueError(f"all feature files must share one dimension D, got {sorted(dims)}")
    return dims.pop()


def _save_tensor(path: Path, obj: Any) -> None:
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def _validated_features(features: Mapping[str, Any], what: str) -> dict[str, np.ndarray]:
    if not features:
        raise ValueError(f"no {what} features given")
    return {_check_uid(uid, what): _as_feature_matrix(x, uid) for uid, x in features.items()}


def _write_feature_files(folder: Path, mats: Mapping[str, np.ndarray]) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    for uid in sorted(mats):
        # .clone(): a tensor that owns its storage, so the file holds exactly [N, D] float32.
        _save_tensor(folder / f"{uid}.pt", torch.from_numpy(mats[uid]).clone())


def _extra_pt_files(folder: Path, keep: Sequence[str]) -> list[str]:
    keep_set = set(keep)
    return sorted(p.name for p in folder.glob("*.pt") if p.name.split(".")[0] not in keep_set)


def _number(d: Mapping[str, Any], key: str, where: str) -> float:
    if key not in d:
        raise ValueError(f"{where}: missing {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{where}.{key}: expected a finite number, got {v!r}")
    return float(v)


def _string(d: Mapping[str, Any], key: str, where: str) -> str:
    if key not in d:
        raise ValueError(f"{where}: missing {key!r}")
    v = d[key]
    if not isinstance(v, str) or not v:
        raise ValueError(f"{where}.{key}: expected a non-empty string, got {v!r}")
    return v


def _list(d: Mapping[str, Any], key: str, where: str) -> list[Any]:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: expected an object, got {type(d).__name__}")
    if key not in d:
        raise ValueError(f"{where}: missing {key!r}")
    v = d[key]
    if not isinstance(v, list):
        raise ValueError(f"{where}.{key}: expected a list, got {type(v).__name__}")
    return v


def _objects(d: Mapping[str, Any], key: str, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The objects of list ``d[key]`` with their paths (``where.key[i]``); a non-object fails."""
    for i, item in enumerate(_list(d, key, where)):
        w = f"{where}.{key}[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{w}: expected an object")
        yield w, item


# ----------------------------------------------------------------------------------------------
# NLQ annotations


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


def process_question(question: str) -> str:
    """VSLNet's canonical query text: ``question.strip(" ").strip("?").lower() + "?"``."""
    return question.strip(" ").strip("?").lower() + "?"


def validate_nlq_annotations(nlq: Any, require_times: bool = True, source: str = "nlq") -> dict[str, Any]:
    """Check the fields VSLNet's preparation reads; raise ``ValueError`` naming the bad path.

    Required: ``videos[].video_uid``, ``videos[].clips[].{clip_uid, video_start_sec,
    video_end_sec, annotations}``, ``annotations[].{annotation_uid, language_queries}``, and per
    query ``clip_start_sec <= clip_end_sec`` when ``require_times`` (set it False for the
    unannotated test file).  ``query`` / ``template`` may be missing or null, as in real files.
    """
    if not isinstance(nlq, Mapping):
        raise ValueError(f"{source}: expected a JSON object with 'videos', got {type(nlq).__name__}")
    for vw, video in _objects(nlq, "videos", source):
        _string(video, "video_uid", vw)
        for cw, clip in _objects(video, "clips", vw):
            _string(clip, "clip_uid", cw)
            s, e = _number(clip, "video_start_sec", cw), _number(clip, "video_end_sec", cw)
            if e < s:
                raise ValueError(f"{cw}: video_end_sec {e} < video_start_sec {s}")
            for aw, ann in _objects(clip, "annotations", cw):
                _string(ann, "annotation_uid", aw)
                for qw, q in _objects(ann, "language_queries", aw):
                    for key in ("query", "template"):
                        if q.get(key) is not None and not isinstance(q[key], str):
                            raise ValueError(f"{qw}.{key}: expected a string or null, got {q[key]!r}")
                    if require_times:
                        qs, qe = _number(q, "clip_start_sec", qw), _number(q, "clip_end_sec", qw)
                        if qe < qs:
                            raise ValueError(f"{qw}: clip_end_sec {qe} < clip_start_sec {qs}")
    return dict(nlq)


def load_nlq_annotations(path: str | Path, require_times: bool = True) -> dict[str, Any]:
    """Read and validate an Ego4D ``nlq_<split>.json`` (see :func:`validate_nlq_annotations`)."""
    path = Path(path)
    try:
        data = read_json(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read NLQ annotations: {e}") from e
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


def vslnet_dataset_split(
    nlq: Mapping[str, Any], rate: float, num_features: Mapping[str, int], test_split: bool = False
) -> dict[str, dict[str, Any]]:
    """One split's VSLNet dataset JSON (``reformat_data`` of ``prepare_ego4d_dataset.py``).

    Same keys, order and arithmetic as the original, with ``fps = rate`` and ``num_frames`` =
    the clip's feature rows from ``num_features`` (clips missing there fall back to the
    original's ``int(clip_duration * rate)``).  ``test_split`` writes ``[0.0, 0.0]`` times as the
    original does for the unannotated test file.
    """

    def nearest(t: float, round_fn: Any) -> int:
        return int(round_fn(int(t * rate)))  # get_nearest_frame, truncation first as in the original

    out: dict[str, dict[str, Any]] = {}
    for video in nlq["videos"]:
        for clip in video["clips"]:
            uid = clip["clip_uid"]
            duration = float(clip["video_end_sec"]) - float(clip["video_start_sec"])
            entry = {
                "fps": rate,
                "num_frames": int(num_features[uid]) if uid in num_features else nearest(duration, math.ceil),
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
        raise ValueError(f"query feature keys must be non-empty strings, got {text!r}")
    if hasattr(vec, "detach"):
        vec = vec.detach().cpu().numpy()
    a = np.asarray(vec, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] != 1 or a.shape[1] == 0:
        raise ValueError(f"query feature for {text!r} must be [D] or [1, D], got shape {a.shape}")
    if not np.isfinite(a).all() or not a.any():
        raise ValueError(f"query feature for {text!r} is non-finite or all zero")
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
    the original's placeholder times.  ``query_features``: query text -> [D] or [1, D].

    With ``strict`` an annotated clip without features is an error (VSLNet would silently drop
    its queries); otherwise it is listed in the summary.  Every file is written atomically
    (temporary sibling + ``os.replace``), so a killed export never leaves a truncated tensor.
    Returns a summary dict (paths, counts, D, missing clips, unrelated ``.pt`` files found);
    VSLNet must then be run with ``--video_feature_dim`` = the summary's ``dim``.
    """
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of features per second, got {rate!r}")
    out = Path(out_dir)
    mats = _validated_features(features, "clip_uid")
    dim = _common_dim(mats)
    shapes = {uid: int(mats[uid].shape[0]) for uid in sorted(mats)}

    split_jsons: dict[str, dict[str, Any]] = {}
    missing: dict[str, list[str]] = {}
    if annotations is not None:
        names = list(split_names) if split_names is not None else list(NLQ_SPLITS[: len(annotations)])
        if len(names) != len(annotations):
            raise ValueError(f"{len(annotations)} annotation files but {len(names)} split names")
        if len(set(names)) != len(names):
            raise ValueError(f"split names must be distinct, got {names}")
        for name, nlq in zip(names, annotations):
            if not isinstance(name, str) or not _UID_RE.match(name):
                raise ValueError(f"split name {name!r} must be a plain file stem")
            test = name == "test"
            validate_nlq_annotations(nlq, require_times=not test, source=f"annotations[{name}]")
            data = vslnet_dataset_split(nlq, rate, shapes, test_split=test)
            lacking = sorted(uid for uid in data if uid not in shapes)
            if lacking:
                if strict:
                    raise ValueError(
                        f"split {name!r}: {len(lacking)} annotated clips have no features, e.g. {lacking[:5]}; "
                        "VSLNet would silently drop their queries (pass strict=False to export anyway)"
                    )
                missing[name] = lacking
            split_jsons[name] = data

    text: dict[str, np.ndarray] | None = None
    if query_features is not None:
        text = {k: _query_matrix(k, v) for k, v in query_features.items()}
        if not text:
            raise ValueError("query_features is empty")
        if len({a.shape[1] for a in text.values()}) != 1:
            raise ValueError("all query features must share one dimension")

    # Everything is validated: now write (features first, the small index files after them).
    feat_dir = out / FEATURES_DIR
    _write_feature_files(feat_dir, mats)
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
        "extra_pt_files": _extra_pt_files(feat_dir, list(shapes)),
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
        import torch

        text_dir = out / TEXT_DIR
        text_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(text_dir / QUERY_NPY, "wb") as f:
            np.save(f, text, allow_pickle=True)  # a dict -> pickled 0-d object array, as EgoVLP does
        _save_tensor(text_dir / QUERY_PT, {k: torch.from_numpy(v).clone() for k, v in text.items()})
        summary["text"] = {
            "npy": str(text_dir / QUERY_NPY),
            "pt": str(text_dir / QUERY_PT),
            "queries": len(text),
            "dim": int(next(iter(text.values())).shape[1]),
        }
    return summary


# ----------------------------------------------------------------------------------------------
# MQ / VSGN


def build_clip_annotations(
    moments_json: Mapping[str, Any],
    video_durations: Mapping[str, float] | None = None,
    feature_counts: Mapping[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """``clip_annotations.json`` content from an Ego4D ``moments_<split>.json`` (``Convert_annotation.py``).

    ``video_durations`` (video_uid -> seconds, Ego4D's ``ego4d.json`` ``duration_sec``) fills
    ``v_duration``; with ``feature_counts`` (video_uid -> T) as well, ``fps = T / v_duration``
    and, as in the original, videos without features are skipped.  Left ``None`` they are
    filled by :func:`write_vsgn` from the features it writes.  Only ``primary`` labels are kept,
    reduced to ``{start_time, end_time, label}`` (clip-relative seconds); test-split clips keep
    no annotations; non-test clips without any are dropped, as the original does.
    """
    where = "moments"
    out: dict[str, dict[str, Any]] = {}
    for vi, video in enumerate(_list(moments_json, "videos", where)):
        vw = f"{where}.videos[{vi}]"
        vid = _string(video, "video_uid", vw)
        split = _string(video, "split", vw)
        if feature_counts is not None and vid not in feature_counts:
            continue  # the original skips videos whose feature file is missing
        v_duration = None if video_durations is None or vid not in video_durations else float(video_durations[vid])
        fps = None
        if v_duration is not None and feature_counts is not None:
            if v_duration <= 0:
                raise ValueError(f"{vw}: duration of {vid} must be positive, got {v_duration}")
            fps = int(feature_counts[vid]) / v_duration
        for ci, clip in enumerate(_list(video, "clips", vw)):
            cw = f"{vw}.clips[{ci}]"
            cid = _string(clip, "clip_uid", cw)
            if cid not in out:
                out[cid] = {
                    "video_id": vid,
                    "clip_id": cid,
                    "parent_start_sec": _number(clip, "video_start_sec", cw),
                    "parent_end_sec": _number(clip, "video_end_sec", cw),
                    "v_duration": v_duration,
                    "fps": fps,
                    "annotations": [],
                    "subset": split,
                }
            if split == "test":
                continue
            for ai, ann in enumerate(_list(clip, "annotations", cw)):
                for li, label in enumerate(_list(ann, "labels", f"{cw}.annotations[{ai}]")):
                    lw = f"{cw}.annotations[{ai}].labels[{li}]"
                    if not isinstance(label, Mapping) or "primary" not in label:
                        raise ValueError(f"{lw}: missing 'primary'")
                    if label["primary"]:
                        out[cid]["annotations"].append(
                            {
                                "start_time": _number(label, "start_time", lw),
                                "end_time": _number(label, "end_time", lw),
                                "label": _string(label, "label", lw),
                            }
                        )
    return {k: v for k, v in out.items() if v["subset"] == "test" or v["annotations"]}


def write_vsgn(
    out_dir: str | Path,
    video_features: Mapping[str, Any],
    clip_annotations: Mapping[str, Mapping[str, Any]],
    strict: bool = True,
) -> dict[str, Any]:
    """Write per-video features and ``clip_annotations.json`` in VSGN's layout.

    ``video_features``: video_uid -> [T, D] (float32 ``{video_uid}.pt`` each).
    ``clip_annotations``: clip_uid -> entry as built by :func:`build_clip_annotations`.  A
    missing ``fps`` is set to ``T / v_duration``; a given one must agree with it (old VSGN
    derives it, new VSGN reads it: both must see the same number).  Clips whose video has no
    features are an error with ``strict``, else dropped and listed (the original skips them).
    The summary also lists clips longer than VSGN's 928-row ``temporal_scale`` (truncated there).
    """
    out = Path(out_dir)
    mats = _validated_features(video_features, "video_uid")
    dim = _common_dim(mats)
    if not isinstance(clip_annotations, Mapping):
        raise ValueError("clip_annotations must be a mapping clip_uid -> entry")

    entries: dict[str, dict[str, Any]] = {}
    skipped: list[str] = []
    too_long: list[str] = []
    for cid, info in clip_annotations.items():
        cw = f"clip_annotations[{cid!r}]"
        if not isinstance(info, Mapping):
            raise ValueError(f"{cw}: expected an object")
        vid = _string(info, "video_id", cw)
        if vid not in mats:
            if strict:
                raise ValueError(f"{cw}: no features for video {vid!r} (pass strict=False to drop such clips)")
            skipped.append(cid)
            continue
        T = int(mats[vid].shape[0])
        if info.get("v_duration") is None:
            raise ValueError(f"{cw}: v_duration unknown; pass video_durations to build_clip_annotations")
        v_duration = _number(info, "v_duration", cw)
        if v_duration <= 0:
            raise ValueError(f"{cw}: v_duration must be positive, got {v_duration}")
        fps = T / v_duration
        if info.get("fps") is not None and not math.isclose(_number(info, "fps", cw), fps, rel_tol=1e-9):
            raise ValueError(f"{cw}: fps {info['fps']} disagrees with T / v_duration = {T} / {v_duration} = {fps}")
        start, end = _number(info, "parent_start_sec", cw), _number(info, "parent_end_sec", cw)
        if not (0 <= start <= end):
            raise ValueError(f"{cw}: need 0 <= parent_start_sec <= parent_end_sec, got [{start}, {end}]")
        subset = _string(info, "subset", cw)
        anns = []
        for ai, a in enumerate(_list(info, "annotations", cw)):
            aw = f"{cw}.annotations[{ai}]"
            anns.append(
                {"start_time": _number(a, "start_time", aw), "end_time": _number(a, "end_time", aw), "label": _string(a, "label", aw)}
            )
        rows = mq_slice(T, v_duration, start, end)
        if rows.stop - rows.start > VSGN_TEMPORAL_SCALE:
            too_long.append(cid)
        entries[cid] = {
            "video_id": vid,
            "clip_id": _string(info, "clip_id", cw) if "clip_id" in info else cid,
            "parent_start_sec": start,
            "parent_end_sec": end,
            "v_duration": v_duration,
            "fps": fps,
            "annotations": anns,
            "subset": subset,
        }

    feat_dir = out / FEATURES_DIR
    _write_feature_files(feat_dir, mats)
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
        "extra_pt_files": _extra_pt_files(feat_dir, list(mats)),
    }


# ----------------------------------------------------------------------------------------------
# demo corpus -> Ego4D-format NLQ annotations

_DEMO_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://egoindex/demo-nlq")
# How each demo action reads in a question ("where did I see the red ball <...>?").
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


def demo_nlq_annotations(ground_truth: Mapping[str, Any], video_uids: Mapping[str, str], split: str = "train") -> dict[str, Any]:
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
    videos = _list(ground_truth, "videos", "ground_truth")
    fps = float(ground_truth.get("fps") or 30.0)
    out_videos: list[dict[str, Any]] = []
    for vi, video in enumerate(videos):
        vw = f"ground_truth.videos[{vi}]"
        path = _string(video, "path", vw)
        if path not in video_uids:
            continue
        uid = _check_uid(video_uids[path], f"video uid for {path!r}")
        duration = _number(video, "duration", vw)
        scenes = _list(video, "scenes", vw)

        for si, scene in enumerate(scenes):
            if not isinstance(scene, Mapping):
                raise ValueError(f"{vw}.scenes[{si}]: expected an object")
            for key in ("colour", "object", "room", "action"):
                _string(scene, key, f"{vw}.scenes[{si}]")
        keys = [[(s["colour"], s["object"]), (s["colour"], s["object"], s["room"])] for s in scenes]
        queries: list[dict[str, Any]] = []
        for si, scene in enumerate(scenes):
            sw = f"{vw}.scenes[{si}]"
            start = min(max(_number(scene, "start", sw), 0.0), duration)
            end = min(max(_number(scene, "end", sw), start), duration)
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
    if not out_videos:
        raise ValueError("none of the ground-truth videos has a uid in video_uids")
    return {
        "version": "1",
        "date": "",
        "description": f"egoindex demo corpus NLQ annotations ({split})",
        "manifest": "",
        "videos": out_videos,
    }


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
        raise ValueError(f"clip_seconds must be a positive number of seconds or None, got {clip_seconds!r}")
    videos = _list(ground_truth, "videos", "ground_truth")
    fps = float(ground_truth.get("fps") or 30.0)

    def frame(t: float) -> int:
        return int(math.floor(t * fps + 0.5))

    out_videos: list[dict[str, Any]] = []
    for vi, video in enumerate(videos):
        vw = f"ground_truth.videos[{vi}]"
        path = _string(video, "path", vw)
        if path not in video_uids:
            continue
        uid = _check_uid(video_uids[path], f"video uid for {path!r}")
        duration = _number(video, "duration", vw)
        if duration <= 0:
            raise ValueError(f"{vw}: duration must be positive, got {duration}")
        scenes = []
        for si, scene in enumerate(_list(video, "scenes", vw)):
            sw = f"{vw}.scenes[{si}]"
            if not isinstance(scene, Mapping):
                raise ValueError(f"{sw}: expected an object")
            scenes.append((_number(scene, "start", sw), _number(scene, "end", sw), _string(scene, "action", sw)))
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
    if not out_videos:
        raise ValueError("none of the ground-truth videos has a uid in video_uids")
    return {
        "version": "1",
        "date": "",
        "description": f"egoindex demo corpus moments annotations ({split})",
        "manifest": "",
        "videos": out_videos,
    }
