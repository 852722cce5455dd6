"""``egoindex demo-data`` / ``demo-classes``: the synthetic corpora of :mod:`egoindex.demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from egoindex.cli.common import console


def demo_data(
    out_dir: Path = typer.Argument(..., help="Folder to write the demo videos and ground_truth.json into."),
    videos: Optional[int] = typer.Option(None, "--videos", min=1, help="Number of videos (default 12; 16 with "
                                         "--motion)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=2.0, help="Length of each video in seconds "
                                            "(default 60; 16 with --motion; at least 5 without it)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same corpus)."),
    fps: Optional[int] = typer.Option(None, "--fps", min=1, help="Frame rate of the rendered videos (default 15; 8 "
                                      "with --motion; rendering time scales with it; ingest at a divisor of it "
                                      "samples exact frames)."),
    motion: bool = typer.Option(False, "--motion", help="The motion corpus instead: small silent videos of "
                                "directional scenes (slides left/right, rises/sinks), with ground_truth.json and an "
                                "EgoClip-format narrations.tsv (for `egoindex bench motion`)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a synthetic head-camera corpus with real spoken narration (espeak-ng), offline.

    Rendered scenes (rooms, coloured objects, actions, camera drift) with a narrator describing
    each one, in varied containers and file names (.MP4, .mov, .mkv, .webm, spaces, unicode),
    plus ground_truth.json with every scene's time, object, colour, action and narration.

    --motion: 160x120 videos without audio (motion_000.mp4 ...), each a few 4 s scenes in which the
    video's one object slides left or right, rises or sinks; each direction is the other played backwards, so
    only the order of frames tells them apart. Ingest them with the narration file:
    egoindex ingest DIR SHARDS --transcripts DIR/narrations.tsv --no-whisper --allow-no-audio.

    Examples:
      egoindex demo-data demo/videos --videos 12 --seconds 60
      egoindex demo-data motion/videos --motion --videos 16
    """
    if motion:
        from egoindex.demo.motion import write_motion_corpus  # as below: not on every command's start-up

        gt = write_motion_corpus(out_dir, n_videos=16 if videos is None else videos,
                                 seconds=16.0 if seconds is None else seconds, seed=seed,
                                 fps=8 if fps is None else fps, progress=not quiet)
        console.print(f"motion corpus ready: {gt.parent} (ground truth: {gt.name}, narrations: narrations.tsv)")
        return
    from egoindex.demo.corpus import write_demo_corpus  # its scene tables cost every command ~0.2 s at import

    gt = write_demo_corpus(out_dir, n_videos=12 if videos is None else videos,
                           seconds=60.0 if seconds is None else seconds, seed=seed,
                           fps=15 if fps is None else fps, progress=not quiet)
    console.print(f"demo corpus ready: {gt.parent} (ground truth: {gt.name})")


def demo_classes(
    out: Path = typer.Argument(..., help="Folder to write OUT/<class>/*.mp4 into."),
    by: str = typer.Option("object", "--by", help="Class attribute: object | action | colour | motion (the four "
                           "directions of one scene: only frame order tells them apart)."),
    per_class: int = typer.Option(8, "--per-class", min=1, help="Videos per class."),
    seconds: float = typer.Option(4.0, "--seconds", min=0.5, help="Length of each video (s)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Only these classes (comma-separated)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same videos)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a folder-per-class dataset of short single-scene demo videos for `egoindex probe`.

    Each clip shows one scene; the class (object, action or colour) is fixed and everything else
    (room, other attributes, motion, camera) varies. Idempotent: existing clips are kept.

    --by motion: the classes are directions (slides left / right, rises, sinks) of the same scene,
    160x120 at 8 fps; a frame-averaging model cannot tell a direction from its reversal, a video
    backbone (`egoindex finetune`) can.

    Examples:
      egoindex demo-classes demo/classes --by object --per-class 8
      egoindex demo-classes demo/motion-classes --by motion --per-class 12
    """
    from egoindex.demo.classes import write_demo_classes  # as demo_data: not on every command's start-up

    m = write_demo_classes(out, by=by, per_class=per_class, seconds=seconds, seed=seed,
                           classes=[c.strip() for c in classes.split(",")] if classes else None, progress=not quiet)
    n = len(json.loads(m.read_text(encoding="utf-8"))["videos"])
    console.print(f"demo classes ready: {out} ({n} videos by {by}; manifest {m.name})")


def demo_labeled(
    out_dir: Path = typer.Argument(..., help="Folder to write DIR/<category>/*.jpg and DIR/labels.csv into."),
    videos: Path = typer.Option(..., "--from", help="An `egoindex demo-data` folder (with ground_truth.json)."),
    shards: Optional[Path] = typer.Option(None, "--shards", help="SHARDS_DIR of its ingest: only the videos of "
                                          "--split, with the manifest's video_uid."),
    split: str = typer.Option("val", "--split", help="--shards: the split whose videos are used (val | train | all)."),
    per_scene: int = typer.Option(2, "--per-scene", min=1, help="Frames per scene (midpoints of equal intervals)."),
    short_side: int = typer.Option(256, "--short-side", help="Frames are scaled like the ingest: short side this."),
    by: str = typer.Option("object", "--by", help="The scene field that names the category: object | colour | room "
                           "| action (one frame cannot show an action: an at-chance check)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a labeled image set from the demo corpus' ground truth, for `egoindex bench forced-choice`.

    For each scene, frames at a few times inside it, saved as DIR/<category>/<video>_<t>.jpg (the
    category is the scene's object, or its colour, room or action with --by), and the
    same frames as rows of DIR/labels.csv (video_uid,time,category) for the CSV form against a
    store. Deterministic and idempotent (existing images are kept).

    Example: egoindex demo-labeled demo/labeled --from demo/videos --shards demo/shards --split val
             egoindex demo-labeled demo/labeled-room --from demo/videos --shards demo/shards --by room
    """
    from egoindex.demo.labeled import write_labeled_set  # PyAV: not on every command's start-up

    labels, n, decoded = write_labeled_set(out_dir, videos, shards=shards, split=split, per_scene=per_scene,
                                           short_side=short_side, by=by, progress=not quiet)
    console.print(f"labeled set ready: {out_dir} ({n} images, {decoded} decoded now; labels {labels.name})")


def register(app: typer.Typer) -> None:
    """Add ``demo-data``, ``demo-classes`` and ``demo-labeled``."""
    app.command("demo-data")(demo_data)
    app.command("demo-classes")(demo_classes)
    app.command("demo-labeled")(demo_labeled)
