"""``egoindex demo-data`` / ``demo-classes``: the synthetic corpora of :mod:`egoindex.demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from egoindex.cli.common import console


def demo_data(
    out_dir: Path = typer.Argument(..., help="Folder to write the demo videos and ground_truth.json into."),
    videos: int = typer.Option(12, "--videos", min=1, help="Number of videos."),
    seconds: float = typer.Option(60.0, "--seconds", min=5.0, help="Length of each video in seconds."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same corpus)."),
    fps: int = typer.Option(15, "--fps", min=1, help="Frame rate of the rendered videos (rendering time scales "
                                                    "with it; ingest at a divisor of it samples exact frames)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a synthetic head-camera corpus with real spoken narration (espeak-ng), offline.

    Rendered scenes (rooms, coloured objects, actions, camera drift) with a narrator describing
    each one, in varied containers and file names (.MP4, .mov, .mkv, .webm, spaces, unicode),
    plus ground_truth.json with every scene's time, object, colour, action and narration.

    Example: egoindex demo-data demo/videos --videos 12 --seconds 60
    """
    from egoindex.demo.corpus import write_demo_corpus  # its scene tables cost every command ~0.2 s at import

    gt = write_demo_corpus(out_dir, n_videos=videos, seconds=seconds, seed=seed, fps=fps, progress=not quiet)
    console.print(f"demo corpus ready: {gt.parent} (ground truth: {gt.name})")


def demo_classes(
    out: Path = typer.Argument(..., help="Folder to write OUT/<class>/*.mp4 into."),
    by: str = typer.Option("object", "--by", help="Class attribute: object | action | colour."),
    per_class: int = typer.Option(8, "--per-class", min=1, help="Videos per class."),
    seconds: float = typer.Option(4.0, "--seconds", min=0.5, help="Length of each video (s)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Only these classes (comma-separated)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same videos)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a folder-per-class dataset of short single-scene demo videos for `egoindex probe`.

    Each clip shows one scene; the class (object, action or colour) is fixed and everything else
    (room, other attributes, motion, camera) varies. Idempotent: existing clips are kept.

    Example: egoindex demo-classes demo/classes --by object --per-class 8
    """
    from egoindex.demo.classes import write_demo_classes  # as demo_data: not on every command's start-up

    m = write_demo_classes(out, by=by, per_class=per_class, seconds=seconds, seed=seed,
                           classes=[c.strip() for c in classes.split(",")] if classes else None, progress=not quiet)
    n = len(json.loads(m.read_text(encoding="utf-8"))["videos"])
    console.print(f"demo classes ready: {out} ({n} videos by {by}; manifest {m.name})")


def register(app: typer.Typer) -> None:
    """Add ``demo-data`` and ``demo-classes``."""
    app.command("demo-data")(demo_data)
    app.command("demo-classes")(demo_classes)
