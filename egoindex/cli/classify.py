"""``egoindex classify`` / ``probe``: thin commands over :mod:`egoindex.classify`.

``egoindex.classify`` is imported inside the commands: it pulls torch and open_clip (the store's
model embeds the videos), which ``egoindex --help`` should not pay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from egoindex.cli.common import console, open_store
from egoindex.errors import ConfigError


def _top_table(title: str, top: list[dict[str, Any]]) -> Table:
    t = Table(title=title)
    t.add_column("#", justify="right")
    t.add_column("label")
    t.add_column("prob", justify="right")
    for i, r in enumerate(top, 1):
        t.add_row(str(i), r["label"], f"{r['prob']:.3f}")
    return t


def classify(
    store: Optional[Path] = typer.Argument(None, help="Store folder (its model embeds the video and the labels); "
                                           "left out with --model."),
    video: Optional[Path] = typer.Argument(None, help="Video file to classify."),
    model: Optional[Path] = typer.Option(None, "--model", help="A fine-tuned classifier (`egoindex finetune` OUT/best.pt): "
                                         "classify with it instead of a store: egoindex classify --model BEST VIDEO."),
    clips: int = typer.Option(3, "--clips", min=1, help="--model: clips averaged for the whole video."),
    window: Optional[float] = typer.Option(None, "--window", help="--model: window length in seconds (default: the "
                                           "median training video)."),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="Comma-separated class names, e.g. \"sitting,walking,clapping\"."),
    head: Optional[Path] = typer.Option(None, "--head",
                                        help="A linear head from `egoindex probe` (its folder, head.npz or "
                                        "head.json): classify with its classes instead of --labels."),
    top_k: int = typer.Option(5, "--top-k", min=1, help="Labels shown per video and per clip."),
    template: list[str] = typer.Option([], "--template", help="Prompt template with {} for the label (repeatable; "
                                       "default: 'a photo of a {}.', 'a head camera video of {}.', '{}')."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frames sampled per second (default 2, or the head's)."),
    start: Optional[float] = typer.Option(None, "--start", min=0.0, help="Classify from this time (s)."),
    end: Optional[float] = typer.Option(None, "--end", min=0.0, help="Classify until this time (s)."),
    per_clip: bool = typer.Option(
        True, "--per-clip/--no-per-clip", help="Also show the top labels of each clip window."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    device: str = typer.Option("cpu", "--device", help="Where to run the model: cpu | cuda | auto."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Zero-shot with this backbone instead of a "
                                           "store's model: one with a text tower (clip-frames:NAME or "
                                           "clip-video:NAME), with --weights."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="--backbone: its local checkpoint."),
) -> None:
    """Zero-shot (or linear-head) classification of a video with a store's model.

    The video is decoded at --fps like the ingest does and embedded with the store's model; its
    clip windows (the store's) and the whole video are scored against the labels' text
    embeddings, averaged over prompt templates, as softmax(logit_scale * cosine).

    With --model OUT/best.pt (a fine-tuned video backbone) no store is needed: the video is
    decoded and sampled as the fine-tune did, and scored over --clips views (whole video) and
    per window.

    Examples:
      egoindex classify demo/store clip.mp4 --labels "ball,cup,spoon,book"
      egoindex classify demo/store clip.mp4 --head probes/objects --json
      egoindex classify --model runs/motion/best.pt clip.mp4
    """
    if model is not None:
        _classify_finetuned(model, video or store, top_k=top_k, clips=clips, window=window, start=start, end=end,
                            per_clip=per_clip, as_json=as_json, device=device)
        return
    source: Any = None
    if backbone is not None:  # no store: VIDEO is the first argument
        from egoindex.classify.backbone_features import TextModelSource  # refuses a backbone without a text tower

        video, source = video or store, TextModelSource(backbone, weights, device=device)
    if (store is None and source is None) or video is None:
        raise ConfigError("give STORE VIDEO (a store's model), or --model BEST VIDEO (a fine-tuned classifier)")
    if head is None and labels is None:
        raise ConfigError("give --labels \"a,b,c\" (zero-shot) or --head HEAD (a trained linear probe)")
    from egoindex.classify import DEFAULT_TEMPLATES, classify_video  # torch + open_clip

    r = classify_video(source if source is not None else open_store(store, device=device), video, labels, head=head, top_k=top_k,
                       templates=tuple(template) or DEFAULT_TEMPLATES, fps=fps, start=start, end=end)
    d = r.as_dict(per_clip=per_clip)
    if as_json:
        print(json.dumps(d, indent=1, ensure_ascii=False))
        return
    how = f"head {head}" if r.mode == "head" else f"zero-shot over {len(r.labels)} labels"
    console.print(f"[bold]{video.name}[/bold]: {how}; {d['n_frames']} frames, {d['start']:.1f}-{d['end']:.1f} s")
    console.print(_top_table("whole video", d["top"]))
    if per_clip and d["clips"]:
        t = Table(title=f"per clip ({d['clip_seconds']:g} s windows every {d['clip_stride']:g} s)")
        t.add_column("time")
        for i in range(min(top_k, 3)):
            t.add_column(f"top {i + 1}")
        for c in d["clips"]:
            t.add_row(f"{c['start']:.1f}-{c['end']:.1f}s", *[f"{x['label']} {x['prob']:.2f}" for x in c["top"][:3]])
        console.print(t)
    console.print(f"model {r.model} @ {r.checkpoint_sha256[:12]}")


def _classify_finetuned(model: Path, video: Optional[Path], *, top_k: int, clips: int, window: Optional[float],
                        start: Optional[float], end: Optional[float], per_clip: bool, as_json: bool, device: str) -> None:
    if video is None:
        raise ConfigError("give the video to classify: egoindex classify --model BEST VIDEO")
    from egoindex.classify.finetuned import classify_with_model  # torch, transformers

    r = classify_with_model(model, video, top_k=top_k, clips=clips, window=window, start=start, end=end, device=device)
    d = r.as_dict(per_clip=per_clip)
    if as_json:
        print(json.dumps(d, indent=1, ensure_ascii=False))
        return
    console.print(f"[bold]{video.name}[/bold]: fine-tuned {d['backbone']} over {len(r.labels)} classes; "
                  f"{d['n_frames']} frames, {d['start']:.1f}-{d['end']:.1f} s, {d['views']} views")
    console.print(_top_table("whole video", d["top"]))
    if per_clip and len(d["clips"]) > 1:
        t = Table(title=f"per window ({d['clip_seconds']:g} s every {d['clip_stride']:g} s)")
        t.add_column("time")
        for i in range(min(top_k, 3)):
            t.add_column(f"top {i + 1}")
        for c in d["clips"]:
            t.add_row(f"{c['start']:.1f}-{c['end']:.1f}s", *[f"{x['label']} {x['prob']:.2f}" for x in c["top"][:3]])
        console.print(t)
    console.print(f"model {model} @ {r.checkpoint_sha256[:12]}")


def probe(
    store_or_dataset: Path = typer.Argument(..., metavar="STORE",
                                            help="Store folder whose model gives the features; with --backbone "
                                                 "or --model there is no store and this is the DATASET."),
    dataset_arg: Optional[Path] = typer.Argument(None, metavar="DATASET",
                                                 help="Folder per class: DATASET/<class>/*.mp4|mov|mkv|webm."),
    out: Path = typer.Option(..., "--out", help="Report, head and feature-cache folder."),
    seed: int = typer.Option(0, "--seed", help="Seed of the train/val/test split."),
    fractions: str = typer.Option("0.6,0.2,0.2", "--fractions", help="Train,val,test fractions per class."),
    fps: float = typer.Option(2.0, "--fps", min=0.01, help="Frames sampled per second."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    device: str = typer.Option("cpu", "--device", help="Where to run the model: cpu | cuda | auto."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="Features of this video backbone instead of a "
                                           "store's model (`egoindex finetune --list-backbones`): random (seeded by "
                                           "--backbone-seed) or --weights."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="--backbone: local weights (file or folder)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Features of a fine-tuned classifier's encoder "
                                         "(`egoindex finetune` OUT/best.pt)."),
    backbone_seed: int = typer.Option(0, "--backbone-seed", help="--backbone without --weights: the random init's seed."),
    num_frames: Optional[int] = typer.Option(None, "--num-frames", min=1, help="--backbone: frames per clip "
                                             "(default: the backbone's)."),
) -> None:
    """Linear probe: train a logistic-regression head on a model's video features.

    Each video's clip windows are embedded like the build does and mean-pooled (cached in
    OUT/features, so a rerun does not re-embed); the split is stratified per class; C is chosen
    on val. Writes report.json / report.md, a confusion matrix and learning curves (PNG), and
    the head (head.npz + head.json, no pickle) for `egoindex classify --head OUT`.

    With --backbone NAME (any backbone, random or --weights) or --model OUT/best.pt no store is
    needed: each video's feature is the backbone's pooled output over 3 uniform clips (decoded
    and sampled as `egoindex finetune` does), and the cache key includes the backbone, a
    fingerprint of its weights (random:SEED for a random init) and the sampling.

    Examples:
      egoindex probe demo/store demo/classes --out demo/probe
      egoindex probe demo/motion-classes --backbone r3d-tiny --out probes/r3d-random
      egoindex probe demo/motion-classes --model runs/motion/best.pt --out probes/r3d-finetuned
    """
    try:
        fr = tuple(float(x) for x in fractions.split(","))
    except ValueError:
        raise ConfigError(f"--fractions wants three numbers like 0.6,0.2,0.2, not {fractions!r}") from None
    from egoindex.classify import run_probe  # torch + open_clip

    if dataset_arg is None:
        if backbone is None and model is None:
            raise ConfigError("give STORE DATASET, or DATASET with --backbone NAME or --model OUT/best.pt")
        dataset_dir = store_or_dataset
        from egoindex.classify.backbone_features import feature_source

        source = feature_source(backbone=backbone, weights=weights, model=model, seed=backbone_seed,
                                num_frames=num_frames, device=device)
    else:
        if backbone is not None or model is not None:
            raise ConfigError("give a STORE or --backbone / --model, not both")
        dataset_dir = dataset_arg
        source = open_store(store_or_dataset, device=device)
    r = run_probe(source, dataset_dir, out, seed=seed, fractions=fr, fps=fps,
                  progress=not no_progress)
    m = r.metrics
    t = Table(title=f"linear probe: {dataset_dir} ({m['n_classes']} classes)", show_header=False)
    for k, label in (("test_top1", "test top-1"), ("test_top5", "test top-5"), ("val_top1", "val top-1"),
                     ("macro_f1", "macro F1"), ("chance_top1", "chance top-1"), ("C", "C (chosen on val)")):
        t.add_row(label, f"{m[k]:.3f}" if k != "C" else f"{m[k]:g}")
    t.add_row("videos", f"{m['n_used']} used (train {m['n_train']}, val {m['n_val']}, test {m['n_test']}), "
                        f"{m['n_skipped']} skipped")
    t.add_row("embedding",
              f"{m['embedded_now']} embedded now, {m['from_cache']} from cache, {m['embed_seconds']:.1f} s")
    console.print(t)
    pc = Table(title="per class (test)")
    for col in ("class", "precision", "recall", "F1", "test", "train"):
        pc.add_column(col)
    for row in r.per_class:
        pc.add_row(row["class"], f"{row['precision']:.2f}", f"{row['recall']:.2f}", f"{row['f1']:.2f}",
                   str(row["test"]), str(row["train"]))
    console.print(pc)
    for sk in r.skipped[:10]:
        console.print(f"[yellow]skipped[/yellow] {sk['video']}: {sk['reason']}")
    if len(r.skipped) > 10:
        console.print(f"[yellow]... and {len(r.skipped) - 10} more skipped[/yellow] (listed in report.json)")
    console.print(f"report: {r.written['md']}  head: {r.written['head']}")


def register(app: typer.Typer) -> None:
    """Add ``classify`` and ``probe``."""
    app.command("classify")(classify)
    app.command("probe")(probe)
