"""``egoindex export ...``: feature export for Ego4D NLQ (VSLNet) and MQ (VSGN).

The logic lives in :mod:`egoindex.export` (:mod:`~egoindex.export.run` joins the annotations, the
backend's feature rows and the baselines' file layouts); these commands only parse options and
print what was written. ``export.run`` and ``export.backend`` are imported inside the commands:
they pull torch, open_clip and lancedb, which ``egoindex --help`` should not pay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from egoindex.cli.common import console, open_store
from egoindex.export.demo_annotations import write_demo_annotations
from egoindex.export.grid import DEFAULT_FRAMES_PER_WINDOW, FeatureGrid
from egoindex.export.windows import FEATURE_RATE

_MODEL_SOURCE_HELP = ("A store folder (its model, checkpoint and frames), or a checkpoint (any form `egoindex build` "
                      "takes; then --videos is required).")
_RATE_HELP = ("Features per second. 1.875 is the official Ego4D grid (32-frame windows, 16-frame stride at 30 fps); "
              "other rates scale that grid in time.")
_FPW_HELP = ("At most this many evenly spaced frame embeddings are pooled per feature window; decoding defaults to "
             "this many frames per window.")
_SOURCE_HELP = ("auto: store frames when dense enough (rate >= feature rate and at most one empty window), "
                "else decode the videos | store: always pool store frames | videos: always decode and embed.")


def _print_summary(s: dict[str, Any], dim_flag: str) -> None:
    ex = s["export"]
    t = Table(title=f"{s['task'].upper()} export: {ex['out_dir']}")
    t.add_column("what")
    t.add_column("value")
    t.add_row("model", f"{s['model']} (checkpoint sha256 {str(s['checkpoint_sha256'])[:12]}...)")
    t.add_row("rate", f"{s['grid']['rate']:g} features/s (window {s['grid']['window_seconds']:.4g} s, "
                      f"stride {s['grid']['stride_seconds']:.4g} s)")
    t.add_row("sources", ", ".join(f"{k}: {v} video(s)" for k, v in sorted(s["sources"].items())))
    t.add_row("features", f"{ex['features_dir']} (D = {ex['dim']})")
    if s["task"] == "nlq":
        t.add_row("files", f"{ex['num_clips']} .pt files, {ex['num_features']} rows; feature_shapes.json")
        for name, d in ex["dataset"].items():
            t.add_row(f"dataset {name}", f"{d['path']} ({d['clips']} clips, {d['queries']} queries)")
        if ex["text"]:
            t.add_row("query text", f"{ex['text']['npy']} and .pt ({ex['text']['queries']} queries)")
    else:
        t.add_row("files", f"{ex['num_videos']} .pt files")
        t.add_row("clip annotations", f"{ex['clip_annotations']} ({ex['num_clips']} clips, "
                                      f"{ex['num_annotations']} moments)")
    t.add_row("summary", s["summary_file"])
    console.print(t)
    for uid, v in list(s["videos"].items())[:5]:
        console.print(f"  {uid}: {v['source']} ({v['reason']})", soft_wrap=True)
    if len(s["videos"]) > 5:
        console.print(f"  ... {len(s['videos']) - 5} more in {s['summary_file']}")
    if s["missing_videos"]:
        console.print(f"[yellow]{len(s['missing_videos'])} annotated video(s) not found[/yellow], "
                      f"e.g. {s['missing_videos'][:3]}")
    for w in s["warnings"][:5]:
        console.print(f"[yellow]warning:[/yellow] {w}")
    console.print(f"train with {dim_flag} {ex['dim']}")


def nlq(
    model_source: Path = typer.Argument(..., help=_MODEL_SOURCE_HELP),
    out_dir: Path = typer.Argument(..., help="Output folder (features/, dataset/, text/, export_summary.json)."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Raw videos folder (default: the store's)."),
    annotations: Optional[list[Path]] = typer.Option(
        None, "--annotations", "-a", help="Ego4D NLQ file (nlq_train.json, nlq_val.json, ...); repeatable."),
    rate: float = typer.Option(FEATURE_RATE, "--rate", help=_RATE_HELP),
    frames_per_window: int = typer.Option(DEFAULT_FRAMES_PER_WINDOW, "--frames-per-window", min=1, help=_FPW_HELP),
    source: str = typer.Option("auto", "--source", help=_SOURCE_HELP),
    decode_fps: Optional[float] = typer.Option(None, "--decode-fps", help="Decoding rate for --source videos/auto "
                                               "(default: frames-per-window per window, at least the rate)."),
    model: Optional[str] = typer.Option(
        None, "--model", help="open_clip model name (a state dict, or an open_clip_train run name without one)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (embedding decoded frames and queries)."),
    strict: bool = typer.Option(True, "--strict/--no-strict", help="Refuse annotated clips whose video is missing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Features for VSLNet (Ego4D NLQ): {clip_uid}.pt [N, D], feature_shapes.json, dataset JSONs, query features.

    With --annotations, one float32 file per annotated clip (the rows of its video's grid that
    VSLNet's preparation keeps), dataset/{split}.json as VSLNet's prepare_ego4d_dataset.py
    writes it (fps = rate, the official num_frames; train/val/test always, {} for a split without
    a file) and text/sentence.{npy,pt} (query text
    -> [1, D]). Without, one {video_uid}.pt per video. Each row pools the frame embeddings of one
    window of the official grid (the tail is covered by a back-padded window; no zero rows).
    export_summary.json records, per video, whether its rows came from the store or the videos.

    Example: egoindex export nlq demo/store demo/vslnet -a demo/ego4d/nlq_train.json -a demo/ego4d/nlq_val.json
    """
    from egoindex.export.backend import Backend  # torch + open_clip + lancedb
    from egoindex.export.run import export_nlq

    backend = Backend(model_source, videos, model=model, device=device)
    s = export_nlq(backend, out_dir, annotations or [], FeatureGrid(rate), frames_per_window, source, decode_fps,
                   strict=strict, progress=not quiet)
    _print_summary(s, "--video_feature_dim")


def mq(
    model_source: Path = typer.Argument(..., help=_MODEL_SOURCE_HELP),
    out_dir: Path = typer.Argument(..., help="Output folder (features/, clip_annotations.json, export_summary.json)."),
    moments: list[Path] = typer.Option(
        ..., "--moments", "-m", help="Ego4D moments file (moments_train.json, ...); repeatable."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Raw videos folder (default: the store's)."),
    rate: float = typer.Option(FEATURE_RATE, "--rate", help=_RATE_HELP),
    frames_per_window: int = typer.Option(DEFAULT_FRAMES_PER_WINDOW, "--frames-per-window", min=1, help=_FPW_HELP),
    source: str = typer.Option("auto", "--source", help=_SOURCE_HELP),
    decode_fps: Optional[float] = typer.Option(None, "--decode-fps", help="Decoding rate for --source videos/auto."),
    model: Optional[str] = typer.Option(
        None, "--model", help="open_clip model name (a state dict, or an open_clip_train run name without one)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    strict: bool = typer.Option(True, "--strict/--no-strict", help="Refuse annotated videos that are missing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Features for VSGN (Ego4D Moment Queries): {video_uid}.pt [T, D] and clip_annotations.json.

    clip_annotations.json is built from the moments files as VSGN's Convert_annotation.py does
    (primary labels, fps = T / v_duration), so VSGN's slice [int(start*fps) : min(int(end*fps), T-1)+1]
    picks each clip's rows.

    Example: egoindex export mq demo/store demo/vsgn -m demo/ego4d/moments_train.json -m demo/ego4d/moments_val.json
    """
    from egoindex.export.backend import Backend  # torch + open_clip + lancedb
    from egoindex.export.run import export_mq

    backend = Backend(model_source, videos, model=model, device=device)
    s = export_mq(backend, out_dir, moments, FeatureGrid(rate), frames_per_window, source, decode_fps,
                  strict=strict, progress=not quiet)
    _print_summary(s, "--input_feat_dim")


def demo_annotations(
    demo_dir: Path = typer.Argument(..., help="Demo corpus folder (written by `egoindex demo-data`)."),
    out_dir: Path = typer.Argument(..., help="Where to write nlq_<split>.json and moments_<split>.json."),
    store: Optional[Path] = typer.Option(
        None, "--store", help="Annotate only this store's videos, each in its store split."),
    clip_seconds: float = typer.Option(15.0, "--clip-seconds", min=1.0, help="Length of the moments clips."),
) -> None:
    """Ego4D-format NLQ and moments annotation files for the demo corpus, from its ground truth.

    One NLQ clip per video (clip_uid = the egoindex video uid), one query per scene ("where did
    I see the red ball in the kitchen?", answer = the scene's time); moments clips of
    --clip-seconds whose labels are the scenes' actions. They drive `egoindex export nlq/mq`.

    Example: egoindex export demo-annotations demo/videos demo/ego4d --store demo/store
    """
    opened = open_store(store) if store is not None else None
    for split, paths in write_demo_annotations(demo_dir, out_dir, opened, clip_seconds).items():
        console.print(f"{split}: {', '.join(paths)}")


def embeddings(
    store: Path = typer.Argument(..., help="A store folder (written by `egoindex build`)."),
    out_dir: Path = typer.Argument(..., help="Output folder: img_emb/, text_emb/, metadata/, projector/, "
                                             "embeddings_summary.json."),
    level: str = typer.Option("frames", "--level", help="frames | clips | utterances (text only)."),
    formats: Optional[list[str]] = typer.Option(
        None, "--format", "-f", help="clip-retrieval | projector; repeatable (default: both)."),
    text: str = typer.Option("auto", "--text", help="Paired text vectors: auto (stored utterance vector, else the "
                                                    "store's model) | store (stored only, else zeros) | none."),
    rows_per_file: int = typer.Option(1_000_000, "--rows-per-file", min=1, help="Rows per clip-retrieval part."),
    max_points: int = typer.Option(5000, "--max-points", min=1, help="Projector: a seeded sample of this many rows."),
    thumb_size: int = typer.Option(64, "--thumb-size", min=1, help="Projector: sprite thumbnail side (pixels)."),
    sprite: bool = typer.Option(True, "--sprite/--no-sprite", help="Projector: thumbnails from the shards."),
    seed: int = typer.Option(0, "--seed", help="Projector sample seed."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto (embedding captions with --text auto)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """A store's vectors as clip-retrieval's embeddings folder and a TensorBoard projector folder.

    OUT/img_emb/img_emb_{i}.npy, OUT/text_emb/text_emb_{i}.npy (float16) and OUT/metadata/metadata_{i}.parquet
    (rows aligned) as clip-retrieval's clip_inference writes them, for `autofaiss build_index` and
    `clip_retrieval index`; OUT/projector/ for `tensorboard --logdir OUT/projector`.

    Example: egoindex export embeddings demo/store demo/embeddings --level clips
    """
    from egoindex.export.embeddings import FORMATS, export_embeddings  # lancedb

    s = export_embeddings(open_store(store, device=device), out_dir, level=level, formats=tuple(formats or FORMATS),
                          text=text, rows_per_file=rows_per_file, max_points=max_points, thumb=thumb_size, seed=seed,
                          sprite=sprite, progress=not quiet)
    t = Table(title=f"embeddings export ({s['level']}): {s['out_dir']}")
    t.add_column("what")
    t.add_column("value")
    if s["clip_retrieval"]:
        cr = s["clip_retrieval"]
        t.add_row("clip-retrieval", f"{cr['rows']} rows in {len(cr['parts'])} part(s), float16, D = {s['dim']}; "
                                    f"{'img_emb + ' if cr['image'] else ''}{'text_emb + ' if cr['text'] else ''}"
                                    "metadata")
        if cr["text_sources"]:
            t.add_row("text vectors", ", ".join(f"{k}: {v}" for k, v in cr["text_sources"].items()))
    if s["projector"]:
        p = s["projector"]
        t.add_row("projector", f"{p['out_dir']}: {p['points']} of {p['sampled_from']} points, "
                               f"sprite {p['files']['sprite'] or 'none'}")
        if p["sprite_note"]:
            t.add_row("sprite", p["sprite_note"])
    t.add_row("summary", s["summary_file"])
    console.print(t)


def register(app: typer.Typer) -> None:
    """Add the ``export`` group and its commands."""
    export = typer.Typer(help="Export features for Ego4D's NLQ (VSLNet) and MQ (VSGN) baselines, and embeddings "
                              "(clip-retrieval, TensorBoard projector).", no_args_is_help=True)
    export.command("nlq")(nlq)
    export.command("mq")(mq)
    export.command("demo-annotations")(demo_annotations)
    export.command("embeddings")(embeddings)
    app.add_typer(export, name="export")
