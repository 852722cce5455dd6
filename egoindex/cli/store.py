"""``egoindex info`` / ``index`` / ``query``: reading a built store through :class:`egoindex.Store`.

``egoindex.store`` is imported inside the commands: it pulls lancedb and faiss (~2 s), which
``egoindex --help`` and the other commands should not pay.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from egoindex.cli.common import console, open_store


def info(store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX."),
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print a store's tables, row counts, model (checkpoint, its form, preprocessing) and index facts.

    Example: egoindex info demo/store
    """
    s = open_store(store)
    facts = {**s.info(), "checkpoint_form": s.meta.checkpoint_form or None,
             "checkpoint_run_name": s.meta.checkpoint_run_name}
    if as_json:
        print(json.dumps(facts, indent=1, ensure_ascii=False))
        return
    t = Table(title=f"egoindex store {store}", show_header=False)
    for k in ("model", "checkpoint", "checkpoint_sha256"):
        t.add_row(k, str(facts.get(k)))
    t.add_row("checkpoint_form", facts["checkpoint_form"] or "not recorded (an older store)")
    if facts["checkpoint_run_name"]:  # open_clip_train's run name
        t.add_row("checkpoint_run_name", facts["checkpoint_run_name"])
    pp = facts.get("preprocessing") or {}
    t.add_row("preprocessing", ", ".join(
        f"{k} {pp[k]}" for k in ("image_size", "mean", "std", "interpolation", "resize_mode") if k in pp) or "not recorded")
    t.add_row("embed_dim", str(facts.get("embed_dim")))
    clips = (facts.get("encoders") or {}).get("clips") or {}
    t.add_row("clips encoder", clips.get("kind", "frame-mean")
              + (f", {clips['num_frames']} frames" if clips.get("num_frames") else ""))
    for k in ("clip_seconds", "clip_stride", "built_at", "egoindex_version", "shards_dir", "videos_root"):
        t.add_row(k, str(facts.get(k)))
    t.add_row("skipped", str(len(facts.get("skipped") or [])))
    console.print(t)
    tt = Table(title="tables")
    for col in ("table", "rows", "version", "index", "nprobe", "recall@10"):
        tt.add_column(col)
    for name, d in facts["tables"].items():
        ix = d.get("index") or {}
        tt.add_row(name, f"{d['rows']:,}", str(d["version"]), str(ix.get("factory", "")), str(ix.get("nprobe", "")),
                   str(ix.get("recall_at_10", "")))
    console.print(tt)


def index(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX."),
    report: bool = typer.Option(False, "--report", help="Measure recall@10 against exact search and latency."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Rebuild the FAISS indexes."),
    factory: Optional[str] = typer.Option(None, "--index", help="FAISS factory string for --rebuild."),
    queries: int = typer.Option(200, "--queries", min=1, help="Sampled queries for --report."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rebuild a store's FAISS indexes, or report their recall@10 and latency against exact search.

    Example: egoindex index demo/store --report
    """
    from egoindex.store.report import index_report, rebuild_indexes  # lancedb + faiss

    s = open_store(store)
    if rebuild:
        s.layout.refuse_remote("`egoindex index --rebuild` (rerun `egoindex build --index FACTORY` instead)")
        rebuild_indexes(s, factory)
        s = open_store(store)
    if report or not rebuild:
        rows = index_report(s, queries)
        if as_json:
            print(json.dumps(rows, indent=1))
            return
        t = Table(title=f"indexes of {store} ({queries} sampled queries, k=10)")
        for col in ("table", "rows", "index", "nprobe", "recall@10", "p50 ms", "p99 ms", "exact p50 ms"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["table"], f"{r['rows']:,}", r["factory"], str(r["nprobe"]), f"{r['recall_at_10']:.3f}",
                      f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['exact_p50_ms']:.2f}")
        console.print(t)


def query(
    store: str = typer.Argument(..., help="Store folder or s3://BUCKET/PREFIX."),
    text: Optional[str] = typer.Argument(None, help="What to look for, e.g. \"baby grabs spoon\"."),
    k: int = typer.Option(10, "--k", min=1, max=10000, help="Number of results (moments, or rows with --no-merge)."),
    level: str = typer.Option("clips", "--level", help="clips | frames | utterances"),
    image: Optional[Path] = typer.Option(None, "--image", help="Query by picture instead of text."),
    like: Optional[str] = typer.Option(None, "--like", help="More like this moment: VIDEO_UID@SECONDS."),
    video: list[str] = typer.Option([], "--video", help="Only this video (repeatable)."),
    split: Optional[str] = typer.Option(None, "--split", help="Only this split (train/val)."),
    start: Optional[float] = typer.Option(None, "--start", help="Only moments ending after this time (s)."),
    end: Optional[float] = typer.Option(None, "--end", help="Only moments starting before this time (s)."),
    speaker: list[str] = typer.Option([], "--speaker",
                                      help="Only rows of this speaker (repeatable; e.g. FEM, MAL, MOT)."),
    child: list[str] = typer.Option([], "--child",
                                    help="Only videos of this child (repeatable; the participants' child_id)."),
    age_min: Optional[int] = typer.Option(None, "--age-min", min=0,
                                          help="Only videos recorded at this age (days) or older."),
    age_max: Optional[int] = typer.Option(None, "--age-max", min=0,
                                          help="Only videos recorded at this age (days) or younger."),
    where: Optional[str] = typer.Option(None, "--where", help="Extra SQL filter on the table's columns."),
    no_merge: bool = typer.Option(False, "--no-merge", help="Raw rows: overlapping windows of one video not merged."),
    min_score: Optional[float] = typer.Option(None, "--min-score", help="Leave out rows scoring below this."),
    gap: Optional[float] = typer.Option(None, "--gap", min=0,
                                        help="Merge rows this many seconds apart too (default: 0 for clips and "
                                             "utterances, one frame interval for frames)."),
    max_span: Optional[float] = typer.Option(None, "--max-span", min=0.001,
                                             help="Longest moment a merge may make, in seconds (default: 2 clip "
                                                  "lengths); a row that would stretch one further is left out."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
    device: str = typer.Option("cpu", "--device", help="Where to embed the query."),
) -> None:
    """Search a store by text, picture or example moment; filters apply before ranking.

    Overlapping or adjacent hits of one video come back as one moment (its span, best score and
    text, the utterances in it); --no-merge prints the raw rows.

    Example: egoindex query demo/store "the baby grabs the red ball" --k 5 --split val

    Adult speech to children aged 6 to 12 months: --speaker FEM --speaker MAL --age-min 180 --age-max 365
    """
    from egoindex.store import Filters  # lancedb + faiss

    s = open_store(store, device=device)
    filters = Filters(tuple(video), split, start, end, where, speakers=tuple(speaker), child_ids=tuple(child),
                      min_age_days=age_min, max_age_days=age_max)
    hits = s.search(text, image=image, like=like, level=level, k=k, filters=filters,
                    merge=not no_merge, min_score=min_score, gap=gap, max_span=max_span)
    if as_json:
        print(json.dumps([h.as_dict() for h in hits], indent=1, ensure_ascii=False))
        return
    t = Table(title=f"{'rows' if no_merge else 'moments'} of {level} for {text or image or like!r}")
    for col in ("#", "score", "video", "time", *(() if no_merge else ("rows",)), "text"):
        t.add_column(col)
    for i, h in enumerate(hits, 1):
        when = f"{h.start:7.2f}s" if h.start == h.end else f"{h.start:.2f}-{h.end:.2f}s"
        said = " / ".join(u.text for u in getattr(h, "utterances", []) if u.text and u.text != h.text)
        who = h.extra.get("speaker")
        line = (f"{who}: " if who else "") + h.text[:80] + (f" [speech: {said[:80]}]" if said else "")
        rows = () if no_merge else (str(len(getattr(h, "rows", [])) or 1),)
        t.add_row(str(i), f"{h.score:.3f}", h.source or h.video_uid[:8], when, *rows, line)
    console.print(t)
    if not hits:
        console.print("no results (empty store, nothing matches the filters, or all score below --min-score)")


def encoders(store: str = typer.Argument(..., help="Store folder."),
             force: bool = typer.Option(False, "--force", help="Export again even when a current encoder is there.")
             ) -> None:
    """Export the store's text tower to ONNX (STORE/encoders), so text queries need no torch.

    `egoindex build` does it at its end; this is for stores built before, or after a failed export.
    Example: egoindex encoders demo/store
    """
    from egoindex.store.encoders import current_text_encoder, write_text_encoder

    s = open_store(store)
    s.layout.refuse_remote("`egoindex encoders` (`egoindex build` exports the encoder of an s3:// store)")
    facts = None if force else current_text_encoder(s.root, s.checkpoint_sha256)
    if facts is None:  # loading the model (torch) only when there is something to export
        facts = write_text_encoder(s.root, s.embedder.loaded, s.checkpoint_sha256, force=True)
    console.print(f"text encoder {facts.onnx_path} ({facts.model}, {facts.embed_dim}-d, context "
                  f"{facts.tokenizer['context_length']}): max |ONNX - PyTorch| {facts.max_abs_diff:.1e}")


def register(app: typer.Typer) -> None:
    """Add ``info``, ``index``, ``query`` and ``encoders``."""
    app.command("info")(info)
    app.command("index")(index)
    app.command("query")(query)
    app.command("encoders")(encoders)
