"""The motion corpus (``egoindex demo-data DIR --motion``): short videos whose scenes are
directional motions ("the red ball slides left", "the blue cup rises"), with exact ground truth
and an EgoClip-format narration file.

Why a corpus of its own: egoindex's clip vector is the normalised mean of frame vectors, which is
the same for a sequence of frames and its reversal, so no frame model can tell "slides left" from
"slides right" when the frames are the same. The paired actions of
:data:`egoindex.demo.vocab.MOTION_ACTIONS` are drawn so that one direction is exactly the other
played backwards (:meth:`egoindex.demo.scenes.SceneRenderer.pose`): only the order of frames tells
them apart. This corpus teaches a clip-level model that order, and ``egoindex bench motion``
measures it (:mod:`egoindex.metrics.motion`).

Design choices:

* Small and fast: 160x120 at 8 fps, 16 s videos of four 4 s scenes by default, H.264 only, flat
  names ``motion_000.mp4`` (the stem is the ``video_uid`` of ``narrations.tsv``), **no audio
  track**: the narration comes from ``narrations.tsv`` (ingest it with ``--transcripts
  narrations.tsv --no-whisper --allow-no-audio``), so no speech synthesis or ASR is involved.
* Balanced: every video shows each direction once per four scenes (a random order), so a
  direction is never predictable from a video, a position in the video, or an object.
* One object in one room per video: its scenes differ only in the direction. So the
  scene-aware negatives of EgoNCE (a clip of the same video at another time) are exactly the
  pairs that only the direction tells apart, which is what the clip model must learn; with a new
  object every scene, any batch is solved from the object alone and direction is never learnt
  (measured: clip models trained on such a corpus stayed near chance on the reversed clips, 46-57 % of 28
  questions).
* Narration on the motion: the object rests ``MOTION_HOLD_S`` at both ends of its scene
  (:func:`egoindex.demo.scenes.motion_window`); the narration window (``clip_start`` /
  ``clip_end`` in ``narrations.tsv``, ``motion_start`` / ``motion_end`` in the ground truth) is
  exactly the time the object moves.
* Every scene records the ``opposite`` sentence: the same template and words with the opposite
  direction, the wrong answer of a text-side question.
* Deterministic and crash-safe like the default corpus: same arguments, same bytes; videos appear
  under their final names only when complete; ``ground_truth.json`` is written last.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from egoindex.core.fsutil import atomic_open, write_json
from egoindex.core.progress import progress_bar
from egoindex.demo.scenes import (
    COLOURS,
    MOTION_ACTIONS,
    MOTION_OPPOSITE,
    OBJECTS,
    ROOMS,
    SURFACES,
    VideoRenderer,
    motion_window,
)
from egoindex.demo.plan import SceneRecord
from egoindex.errors import ConfigError

__all__ = [
    "EGOCLIP_COLUMNS",
    "MOTION_GENERATOR",
    "MOTION_FORMAT_VERSION",
    "NARRATIONS_FILE",
    "MotionScene",
    "motion_video_names",
    "plan_motion_video",
    "write_motion_corpus",
]

MOTION_GENERATOR = "egoindex demo-data --motion"
#: Bump when rendering/planning changes so existing motion corpora are regenerated.
MOTION_FORMAT_VERSION = 1
GROUND_TRUTH = "ground_truth.json"
NARRATIONS_FILE = "narrations.tsv"
#: The columns of EgoClip's ``egoclip.csv`` (tab-separated), in its order.
EGOCLIP_COLUMNS: tuple[str, ...] = ("clip_idx", "video_uid", "video_dur", "narration_source", "narration_ind",
                                    "narration_time", "clip_start", "clip_end", "clip_text", "tag_verb", "tag_noun")
_SCENE_S = 4.0  # target scene length; a video of S seconds has round(S / 4) equal scenes

# Narration templates per direction; the template at index i of an action and of its opposite
# differ only in the direction words, so a scene's "opposite" sentence is the same sentence with
# the other direction. "[...]" = optional words (kept or dropped per scene, the same in both).
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "slides left": ("the {c} {o} slides left", "[look, ]the {c} {o} is sliding to the left",
                    "{a} {c} {o} moves to the left[ on the {surface}]"),
    "slides right": ("the {c} {o} slides right", "[look, ]the {c} {o} is sliding to the right",
                     "{a} {c} {o} moves to the right[ on the {surface}]"),
    "rises": ("the {c} {o} rises", "[look, ]the {c} {o} is going up", "{a} {c} {o} floats up[ in the {room}]"),
    "sinks": ("the {c} {o} sinks", "[look, ]the {c} {o} is going down", "{a} {c} {o} floats down[ in the {room}]"),
}


@dataclass
class MotionScene(SceneRecord):
    """One scene of a motion video, as recorded in ``ground_truth.json`` (times in video seconds)."""

    start: float
    end: float
    room: str
    object: str
    colour: str
    action: str
    narration: str
    opposite: str  # the same sentence with the opposite direction
    motion_start: float  # the object moves during [motion_start, motion_end]; the narration window
    motion_end: float
    variant: int = field(default=0, repr=False)
    room_seed: int = field(default=0, repr=False)


def motion_video_names(n_videos: int) -> list[str]:
    """``motion_000.mp4`` ...: flat, ASCII, no dots in the stem (the stem is the video_uid)."""
    if n_videos < 1:
        raise ConfigError("n_videos must be >= 1")
    return [f"motion_{i:03d}.mp4" for i in range(n_videos)]


def _fill(template: str, fields: dict[str, str], keep: list[bool]) -> str:
    counter = iter(keep)
    text = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1) if next(counter, False) else "", template).format(**fields)
    return re.sub(r"\s+", " ", text).strip()


def plan_motion_video(index: int, seconds: float, seed: int) -> list[MotionScene]:
    """The scenes of motion video ``index``: ``round(seconds / 4)`` equal scenes (at least one),
    each one directional action of one coloured object in one room, with its narration."""
    if seconds < 2.0:
        raise ConfigError("a motion video needs seconds >= 2")
    rng = np.random.default_rng([seed, index, 707])
    n = max(1, int(round(seconds / _SCENE_S)))
    length = float(seconds) / n
    main_room = ROOMS[int(rng.integers(len(ROOMS)))]
    actions: list[str] = []
    while len(actions) < n:  # each direction once per len(MOTION_ACTIONS) scenes, in a random order
        actions += [MOTION_ACTIONS[int(i)] for i in rng.permutation(len(MOTION_ACTIONS))]
    scenes: list[MotionScene] = []
    room = main_room
    obj = OBJECTS[int(rng.integers(len(OBJECTS)))]
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    for k in range(n):
        start = round(k * length, 3)
        end = round(float(seconds), 3) if k == n - 1 else round((k + 1) * length, 3)
        action = actions[k]
        ti = int(rng.integers(len(_TEMPLATES[action])))
        keep = [bool(rng.random() < 0.5) for _ in range(_TEMPLATES[action][ti].count("["))]
        fields = {"c": colour, "o": obj, "a": "an" if colour[0] in "aeiou" else "a", "room": room,
                  "surface": SURFACES[room]}
        t0, t1 = motion_window(end - start)
        scenes.append(MotionScene(
            start=start, end=end, room=room, object=obj, colour=colour, action=action,
            narration=_fill(_TEMPLATES[action][ti], fields, keep),
            opposite=_fill(_TEMPLATES[MOTION_OPPOSITE[action]][ti], fields, keep),
            motion_start=round(start + t0, 3), motion_end=round(start + t1, 3),
            variant=int(rng.integers(0, 2**31 - 1)),
            room_seed=int(np.random.default_rng([seed, ROOMS.index(room), 808]).integers(2**31 - 1)),
        ))
    return scenes


def _encode(path: Path, scenes: list[MotionScene], seconds: float, cam_seed: int, fps: int,
            size: tuple[int, int], report: Callable[[int], None]) -> None:
    """Render every frame and encode H.264 (bit-exact, single thread, no audio) into ``path``."""
    import av  # only when writing videos

    renderer = VideoRenderer(cam_seed, size, duration_hint=seconds)
    n_frames = int(round(seconds * fps))
    with av.open(str(path), mode="w", format="mp4", options={"fflags": "+bitexact"}) as out:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "superfast", "crf": "23", "threads": "1"})
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        vs.codec_context.flags |= av.codec.context.Flags.bitexact
        k = 0
        for f in range(n_frames):
            t = f / fps
            while k < len(scenes) - 1 and t >= scenes[k].end:
                k += 1
            frame = av.VideoFrame.from_image(renderer.render_image(scenes[k].scene(), t - scenes[k].start, t))
            frame.pts = f
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    report(n_frames)


def _narration_rows(videos: list[dict[str, Any]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for v in videos:
        for i, s in enumerate(v["scenes"]):
            mid = round((s["motion_start"] + s["motion_end"]) / 2, 3)
            rows.append([str(len(rows)), v["video_uid"], f"{v['duration']:g}", "narration_pass_1", str(i),
                         f"{mid:g}", f"{s['motion_start']:g}", f"{s['motion_end']:g}", s["narration"],
                         f"[{MOTION_ACTIONS.index(s['action'])}]", f"[{OBJECTS.index(s['object'])}]"])
    return rows


def _args_record(n_videos: int, seconds: float, seed: int, fps: int, size: tuple[int, int]) -> dict[str, Any]:
    return {"generator": MOTION_GENERATOR, "format_version": MOTION_FORMAT_VERSION, "seed": int(seed),
            "n_videos": int(n_videos), "seconds": round(float(seconds), 3), "fps": int(fps),
            "size": [int(size[0]), int(size[1])]}


def _complete(out_dir: Path, args: dict[str, Any]) -> bool:
    try:
        gt = json.loads((out_dir / GROUND_TRUTH).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(gt, dict) and all(gt.get(k) == v for k, v in args.items())
            and (out_dir / NARRATIONS_FILE).is_file()
            and all((out_dir / v["path"]).is_file() for v in gt.get("videos", [])))


def write_motion_corpus(out_dir: Path, n_videos: int = 16, seconds: float = 16.0, seed: int = 0, fps: int = 8,
                        size: tuple[int, int] = (160, 120), progress: bool = True) -> Path:
    """Write the motion corpus into ``out_dir`` and return its ``ground_truth.json``.

    Writes ``motion_NNN.mp4``, ``narrations.tsv`` (EgoClip format: one row per scene, the window
    is the motion, tags ``[action index]`` / ``[object index]`` into ``MOTION_ACTIONS`` /
    ``OBJECTS``) and ``ground_truth.json`` (``{"generator", "format_version", "seed", "n_videos",
    "seconds", "fps", "size", "actions", "videos": [{"path", "video_uid", "duration", "scenes":
    [{"start", "end", "room", "object", "colour", "action", "narration", "opposite",
    "motion_start", "motion_end"}]}]}``), last. Idempotent: a complete corpus with the same
    arguments is left as it is.
    """
    out_dir = Path(out_dir)
    w, h = int(size[0]), int(size[1])
    if n_videos < 1 or fps < 1:
        raise ConfigError("n_videos and fps must be >= 1")
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise ConfigError("size must be even and at least 64x64 (H.264 4:2:0 needs even dimensions)")
    if seconds < 2.0 or seed < 0:
        raise ConfigError("seconds must be >= 2 and seed >= 0")
    args = _args_record(n_videos, seconds, seed, fps, (w, h))
    gt_path = out_dir / GROUND_TRUTH
    if _complete(out_dir, args):
        return gt_path
    try:
        other = json.loads(gt_path.read_text(encoding="utf-8")).get("generator")
    except (OSError, ValueError, AttributeError):
        other = None
    if other not in (None, MOTION_GENERATOR):  # its videos would be ingested with ours
        raise ConfigError(f"{out_dir} holds another corpus ({other}); write the motion corpus to its own folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    gt_path.unlink(missing_ok=True)  # incomplete until the new ground truth is written
    videos: list[dict[str, Any]] = []
    with progress_bar("motion corpus", enabled=progress) as bar:
        task = bar.add_task(f"{n_videos} videos -> {out_dir}", total=n_videos * int(round(seconds * fps)))
        for i, name in enumerate(motion_video_names(n_videos)):
            scenes = plan_motion_video(i, seconds, seed)
            final = out_dir / name
            tmp = final.with_name(f".{final.name}.part")
            cam_seed = int(np.random.SeedSequence([seed, i, 909]).generate_state(1)[0])
            try:
                _encode(tmp, scenes, float(seconds), cam_seed, fps, (w, h), lambda n: bar.advance(task, n))
                os.replace(tmp, final)
            finally:
                tmp.unlink(missing_ok=True)
            videos.append({"path": name, "video_uid": Path(name).stem, "duration": round(float(seconds), 3),
                           "scenes": [s.ground_truth() for s in scenes]})
    with atomic_open(out_dir / NARRATIONS_FILE, "w") as f:
        f.write("\t".join(EGOCLIP_COLUMNS) + "\n")
        for row in _narration_rows(videos):
            f.write("\t".join(row) + "\n")
    write_json(gt_path, {**args, "actions": list(MOTION_ACTIONS), "videos": videos})
    return gt_path
