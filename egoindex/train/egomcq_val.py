"""EgoMCQ during training (``egoindex train --val-egomcq FILE|generate``), as EgoVLP monitors it.

EgoVLP picks its pretraining checkpoints by the EgoMCQ curve, not by the contrastive loss. Here the
same: at every validation rank 0 scores an EgoMCQ set (official format, or generated from the val
videos) and logs ``egomcq_inter_acc``/``egomcq_intra_acc`` (percent, chance 20 %) to metrics.jsonl,
TensorBoard and curves.png.

Where the frames come from: no store exists during training, so the frames of every choice window
are read once, when training starts, from the val shards (pair shards and ``uncaptioned/``: every
sampled frame of a val video), keeping only the JPEGs that fall in some window (a few per choice).
At each validation they are decoded with the validation transform, ``num_frames`` per window by
the one sampling rule (:func:`egoindex.model.pooling.clip_frame_indices`: segment middles of the
window's frames, or the nearest frame when the window holds none), and embedded: a clip model runs
its clip encoder, a frame model takes the normalised mean of the frame vectors (the store's
frame-mean clips). Query vectors are the text tower on ``query.clip_text``; scoring is
:func:`egoindex.metrics.egomcq.score_egomcq`.

``generate`` makes the questions from the val clip shards' moments and windows of 4 s every 2 s
(the build's default clips) with :func:`egoindex.metrics.egomcq.generate_egomcq`, seeded by the
run's seed, and writes them to ``RUN_DIR/egomcq_val.json`` so the set can be scored again later.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from egoindex.dataset.layout import manifest_by_uid, read_transcript
from egoindex.dataset.shards import list_shards, read_shard
from egoindex.errors import TrainError
from egoindex.metrics import egomcq
from egoindex.model.pooling import clip_frame_indices, clip_windows

#: The generated set's windows: the build's default clips (BuildConfig clip_seconds / clip_stride).
WINDOW_SECONDS, WINDOW_STRIDE = 4.0, 2.0
GENERATED_QUESTIONS = 200


@dataclass
class VideoFrames:
    times: np.ndarray  # sorted
    jpegs: list[bytes]


def generate_from_shards(shards_dir: Path, n: int, seed: int) -> dict[str, egomcq.EgoMCQItem]:
    """EgoMCQ questions from the val videos of SHARDS_DIR (their transcripts and durations)."""
    manifest = manifest_by_uid(shards_dir)
    val = sorted(u for u, m in manifest.items() if m.get("split") == "val" and m.get("status", "ok") == "ok")
    utts, windows, durations = [], {}, {}
    for uid in val:
        dur = float(manifest[uid].get("duration_s") or 0.0)
        if dur <= 0:
            continue
        durations[uid] = dur
        windows[uid] = clip_windows(dur, WINDOW_SECONDS, WINDOW_STRIDE)
        for u in read_transcript(shards_dir, uid):
            if str(u.get("text", "")).strip():
                utts.append({"video_uid": uid, "start": float(u["start"]), "end": float(u["end"]),
                             "text": str(u["text"]).strip(), "split": "val"})
    try:
        return egomcq.generate_egomcq(utts, windows, n, seed, durations=durations)
    except ValueError as e:
        raise TrainError(f"--val-egomcq generate: {e}") from e


def load_frames(shards_dir: Path, windows: dict[str, list[tuple[float, float]]], slack: float) -> dict[str, VideoFrames]:
    """The JPEGs of the val shards' frames that lie in (or within ``slack`` s of) some window."""
    kept: dict[str, list[tuple[float, bytes]]] = {}
    for path in list_shards(shards_dir, "val"):
        for key, sample in read_shard(path):
            if key is None:
                break
            meta = json.loads(sample["json"])
            uid = str(meta.get("video_uid"))
            ws = windows.get(uid)
            if not ws:
                continue
            t = float(meta["t"])
            if any(s - slack <= t <= e + slack for s, e in ws):
                kept.setdefault(uid, []).append((t, sample["jpg"]))
    out = {}
    for uid, rows in kept.items():
        rows.sort(key=lambda r: r[0])
        out[uid] = VideoFrames(np.array([r[0] for r in rows]), [r[1] for r in rows])
    return out


class EgoMCQMonitor:
    """An EgoMCQ set with its frames, scored at every validation (module docstring)."""

    def __init__(self, items: dict[str, egomcq.EgoMCQItem], shards_dir: Path, source: str, slack: float = 2.0):
        if not items:
            raise TrainError(f"--val-egomcq {source}: no questions")
        self.items, self.source = items, source
        windows: dict[str, list[tuple[float, float]]] = {}
        for it in items.values():
            for c in it["choices"].values():
                windows.setdefault(str(c["video_uid"]), []).append((float(c["clip_start"]), float(c["clip_end"])))
        self.frames = load_frames(Path(shards_dir), windows, slack)
        missing = sorted(set(windows) - set(self.frames))
        if missing:
            raise TrainError(f"--val-egomcq {source}: {len(missing)} videos of its choices have no frames in the val "
                             f"shards of {shards_dir} (e.g. {missing[:3]}); the file must be about val videos")

    @classmethod
    def open(cls, spec: str, shards_dir: Path, run_dir: Path, seed: int) -> EgoMCQMonitor:
        if spec == "generate":
            items = generate_from_shards(shards_dir, GENERATED_QUESTIONS, seed)
            path = run_dir / "egomcq_val.json"
            egomcq.write_egomcq(items, path)
            return cls(items, shards_dir, f"generate ({len(items)} questions, {path})")
        try:
            items = egomcq.load_egomcq(spec)
        except (ValueError, OSError) as e:
            raise TrainError(f"--val-egomcq {spec}: {e}") from e
        return cls(items, shards_dir, spec)

    @torch.no_grad()
    def score(self, model: torch.nn.Module, preprocess: Callable[[Image.Image], torch.Tensor],
              tokenizer: Callable[[list[str]], torch.Tensor], device: torch.device,
              autocast: Callable[[], contextlib.AbstractContextManager], num_frames: int,
              batch_size: int = 32) -> dict[str, float]:
        """Inter/intra accuracy (percent) of ``model`` (a clip model when it has ``encode_video``)."""
        was_training = model.training
        model.eval()
        windows = egomcq_windows(self.items)
        index = {w: i for i, w in enumerate(windows)}
        clip_vecs = []
        for lo in range(0, len(windows), batch_size):
            clips = []
            for uid, s, e in windows[lo:lo + batch_size]:
                vf = self.frames[uid]
                idx = clip_frame_indices(vf.times, s, e, num_frames)
                frames = []
                for i in idx.tolist():
                    with Image.open(io.BytesIO(vf.jpegs[i])) as im:
                        frames.append(preprocess(im.convert("RGB")))
                clips.append(torch.stack(frames))
            video = torch.stack(clips).to(device)
            with autocast():
                if hasattr(model, "encode_video"):
                    v = model.encode_video(video, normalize=True)
                else:
                    f = F.normalize(model.encode_image(video.flatten(0, 1)).float(), dim=-1)
                    v = F.normalize(f.view(video.shape[0], video.shape[1], -1).mean(1), dim=-1)
            clip_vecs.append(v.float().cpu().numpy())
        cv = np.concatenate(clip_vecs)
        keys = list(self.items)
        texts = [self.items[k]["query"]["clip_text"] for k in keys]
        tv = []
        for lo in range(0, len(texts), 256):
            with autocast():
                t = model.encode_text(tokenizer(texts[lo:lo + 256]).to(device), normalize=True)
            tv.append(t.float().cpu().numpy())
        q = np.concatenate(tv)
        choice = {k: np.stack([cv[index[_window(self.items[k]["choices"][str(i)])]] for i in range(egomcq.N_CHOICES)])
                  for k in keys}
        scored = egomcq.score_egomcq(self.items, {k: q[i] for i, k in enumerate(keys)}, choice)
        if was_training:
            model.train()
        return {f"egomcq_{k}": float(v) for k, v in scored.items()
                if k in ("inter_acc", "intra_acc", "overall_acc", "n_inter", "n_intra")}


def _window(c: dict[str, Any]) -> tuple[str, float, float]:
    return str(c["video_uid"]), float(c["clip_start"]), float(c["clip_end"])


def egomcq_windows(items: dict[str, egomcq.EgoMCQItem]) -> list[tuple[str, float, float]]:
    """Every distinct choice window, in first-seen order."""
    seen: dict[tuple[str, float, float], None] = {}
    for it in items.values():
        for i in range(egomcq.N_CHOICES):
            seen.setdefault(_window(it["choices"][str(i)]))
    return list(seen)
