"""N-way forced choice (``egoindex bench forced-choice``): given a category word, does the store's
model pick the image of that category among ``ways`` candidates? (CVCL's evaluation, Vong et al.,
Science 2024; trials, credit and accuracy are :mod:`egoindex.metrics.forced_choice`.)

The labeled images come in one of two forms:

* a folder ``DIR/<category>/*.jpg`` (``.jpeg``/``.png`` too; the category is the folder name),
  embedded with the store's image tower exactly like an image query (``Embedder.encode_pil``:
  the geometry of the store's frames);
* a CSV ``video_uid,time,category`` naming frames of the store: the stored frame of that video
  nearest to ``time`` within ``nearest_s`` (1 s) is used with its stored vector, so no model is
  loaded for the images; rows without such a frame are skipped with a reason in the report.

The category's text vector is the prompt ensemble of :func:`egoindex.model.prompts.class_embeddings`
(the renormalised mean of its templates' normalised embeddings) by the store's text encoder.

Why a trials file: the trials are generated once (seeded) and written; ``--trials-file`` scores
another model or store on the very same trials, and the report records the file's sha256.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.bench.result import BenchResult, report_meta
from egoindex.bench.store_rows import read_vectors
from egoindex.bench.videos import normalise_rows
from egoindex.core.fsutil import sha256_file
from egoindex.core.progress import counting
from egoindex.core.report import new_figure, save_figure, write_report
from egoindex.errors import AnnotationError, BenchError, ModelError
from egoindex.metrics.forced_choice import (
    DEFAULT_WAYS,
    Item,
    Trial,
    forced_choice_metrics,
    generate_trials,
    read_trials,
    score_trials,
    write_trials,
)
from egoindex.model.prompts import check_templates, class_embeddings
from egoindex.store.filters import Filters

__all__ = ["DEFAULT_TEMPLATES", "IMAGE_SUFFIXES", "LabeledSet", "load_labeled", "run_forced_choice"]

#: The bare word and two short carriers: the word is what CVCL's evaluation prompts with.
DEFAULT_TEMPLATES: tuple[str, ...] = ("{}", "a {}", "a photo of a {}")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: A CSV row's time may be this far (seconds) from the nearest stored frame of its video.
DEFAULT_NEAREST_S = 1.0
_BATCH = 64


@dataclass
class LabeledSet:
    """Labeled items, their unit image vectors by key, and the rows that were skipped (why)."""

    kind: str
    source: Path
    items: list[Item]
    vectors: dict[str, np.ndarray]
    skipped: list[dict[str, Any]]


def _folder_items(store: Any, root: Path, progress: bool) -> LabeledSet:
    from PIL import Image  # Pillow: only this form reads images

    files = sorted(p for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                   for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise BenchError(f"{root} has no labeled images (expected {root}/<category>/*.jpg)")
    items: list[Item] = []
    vectors: dict[str, np.ndarray] = {}
    skipped: list[dict[str, Any]] = []
    batch: list[tuple[Item, Any]] = []

    def flush() -> None:
        vecs = normalise_rows(store.embedder.encode_pil([im for _, im in batch]))
        for (it, _), v in zip(batch, vecs):
            items.append(it)
            vectors[it.key] = v
        batch.clear()

    with counting("labeled images", len(files), enabled=progress) as advance:
        for p in files:
            key = p.relative_to(root).as_posix()
            advance()
            try:
                with Image.open(p) as im:
                    img = im.convert("RGB")
            except (OSError, ValueError) as e:
                skipped.append({"item": key, "reason": f"unreadable image ({type(e).__name__}: {e})"})
                continue
            batch.append((Item(key, p.parent.name), img))
            if len(batch) >= _BATCH:
                flush()
        if batch:
            flush()
    return LabeledSet("folder", root, items, vectors, skipped)


def _csv_items(store: Any, path: Path, nearest_s: float) -> LabeledSet:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise BenchError(f"{path}: cannot read the labels ({type(e).__name__}: {e})") from None
    if rows and not {"video_uid", "time", "category"} <= set(rows[0]):
        raise BenchError(f"{path}: expected the columns video_uid,time,category, got {','.join(rows[0])}")
    skipped: list[dict[str, Any]] = []
    wanted: list[tuple[int, str, float, str]] = []
    for i, r in enumerate(rows, start=2):  # line numbers as an editor shows them (header = line 1)
        uid, cat = (r.get("video_uid") or "").strip(), (r.get("category") or "").strip()
        try:
            t = float(r.get("time") or "")
        except ValueError:
            t = float("nan")
        if not uid or not cat or not math.isfinite(t):
            skipped.append({"item": f"line {i}", "reason": "empty video_uid or category, or a time that is not a number"})
            continue
        wanted.append((i, uid, t, cat))
    uids = sorted({w[1] for w in wanted})
    by_video: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if uids:
        meta, vecs = read_vectors(store, "frames", ["video_uid", "t"], Filters(video_uids=tuple(uids)).sql("frames"))
        vids = np.asarray([m["video_uid"] for m in meta], dtype=object)
        times = np.asarray([m["t"] for m in meta], np.float64)
        for u in uids:
            idx = np.flatnonzero(vids == u)
            idx = idx[np.argsort(times[idx], kind="stable")]
            by_video[u] = (times[idx], vecs[idx])
    items: list[Item] = []
    vectors: dict[str, np.ndarray] = {}
    category_of: dict[str, str] = {}
    for line, uid, t, cat in wanted:
        times, vecs = by_video.get(uid, (np.zeros(0), np.zeros((0, store.dim), np.float32)))
        if times.size == 0:
            skipped.append({"item": f"line {line}", "reason": f"the store has no frames of video {uid}"})
            continue
        j = int(np.argmin(np.abs(times - t)))
        if abs(times[j] - t) > nearest_s:
            skipped.append({"item": f"line {line}", "reason": f"no frame of {uid} within {nearest_s:g} s of {t:g} s "
                                                             f"(nearest {times[j]:.3f} s)"})
            continue
        key = f"{uid}@{times[j]:.3f}"
        if key in category_of:
            if category_of[key] != cat:
                skipped.append({"item": f"line {line}", "reason": f"frame {key} is already labeled "
                                                                 f"{category_of[key]!r}"})
            continue  # the same frame twice with one label: one item
        category_of[key] = cat
        items.append(Item(key, cat))
        vectors[key] = normalise_rows(vecs[j:j + 1])[0]
    if not items:
        raise BenchError(f"{path}: no row names a frame of the store ({len(skipped)} skipped)")
    return LabeledSet("csv", path, items, vectors, skipped)


def load_labeled(store: Any, labeled: str | Path, *, nearest_s: float = DEFAULT_NEAREST_S,
                 progress: bool = False) -> LabeledSet:
    """The labeled set of ``labeled``: a folder of category folders, or a ``.csv`` of store frames."""
    p = Path(labeled)
    if p.is_dir():
        return _folder_items(store, p, progress)
    if p.is_file() and p.suffix.lower() == ".csv":
        return _csv_items(store, p, nearest_s)
    raise BenchError(f"--labeled {p}: expected a folder DIR/<category>/*.jpg or a .csv with "
                     "video_uid,time,category")


def _check_trials_against(trials: Sequence[Trial], labeled: LabeledSet, trials_file: Path) -> None:
    """Trials read back must name only items of this labeled set, with the same categories."""
    cat = {it.key: it.category for it in labeled.items}
    for t in trials:
        for key, c in zip(t.candidates, t.categories):
            if key not in cat:
                raise BenchError(f"{trials_file}: trial {t.id} names {key!r}, which is not among the labeled images "
                                 f"of {labeled.source} (were the trials made from another labeled set?)")
            if cat[key] != c:
                raise BenchError(f"{trials_file}: trial {t.id} says {key!r} is {c!r}, the labeled set says "
                                 f"{cat[key]!r}")


def _accuracy_plot(rows: list[dict[str, Any]], overall: float, chance: float, title: str) -> Any:
    """Per-category accuracy bars (overall first) with a dashed line at chance."""
    def draw(path: Path) -> None:
        labels = ["(all)"] + [str(r["category"]) for r in rows]
        vals = [overall] + [float(r["acc"]) for r in rows]
        fig = new_figure((max(6.0, 0.5 * len(labels) + 2), 4.0))
        ax = fig.subplots()
        colours = ["tab:orange"] + ["tab:blue"] * len(rows)
        bars = ax.bar(range(len(vals)), [v if math.isfinite(v) else 0.0 for v in vals], color=colours)
        for bar, v in zip(bars, vals):
            ax.annotate(f"{v:.0f}" if math.isfinite(v) else "n/a",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
        ax.axhline(chance, color="tab:red", linestyle="--", label=f"chance {chance:.0f} %")
        ax.set_xticks(range(len(vals)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 105)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.legend(loc="upper right", fontsize=7)
        save_figure(fig, path)
    return draw


def run_forced_choice(store: Any, labeled: str | Path, out_dir: str | Path, *, ways: int | None = None,
                      seed: int = 0, n_trials: int | None = None, templates: Sequence[str] | None = None,
                      trials_file: str | Path | None = None, trials_out: str | Path | None = None,
                      nearest_s: float = DEFAULT_NEAREST_S, name: str = "forced_choice",
                      progress: bool = False) -> BenchResult:
    """Score n-way forced choice on ``labeled`` (see the module doc). Without ``trials_file`` the
    trials are generated (``ways`` default 4, ``seed``, ``n_trials``) and written to ``trials_out``
    (default OUT_DIR/NAME_trials.json); with it, they are read back (its ways and seed are the
    report's). Writes NAME.json, NAME.md and NAME_accuracy.png to ``out_dir``."""
    try:
        ts = check_templates(list(templates) if templates else list(DEFAULT_TEMPLATES))
    except ModelError as e:
        raise BenchError(f"--template: {e}") from None
    lab = load_labeled(store, labeled, nearest_s=nearest_s, progress=progress)
    out = Path(out_dir)
    try:
        if trials_file is not None:
            tfile = Path(trials_file)
            trials, header = read_trials(tfile)
            if not trials:
                raise BenchError(f"{tfile} has no trials")
            if ways is not None and ways != header["ways"]:
                raise BenchError(f"--ways {ways} but {tfile} holds {header['ways']}-way trials (leave --ways out)")
            ways, seed = header["ways"], header["seed"]
            _check_trials_against(trials, lab, tfile)
        else:
            ways = DEFAULT_WAYS if ways is None else ways
            trials = generate_trials(lab.items, ways=ways, seed=seed, n_trials=n_trials)
            tfile = write_trials(Path(trials_out) if trials_out is not None else out / f"{name}_trials.json",
                                 trials, ways=ways, seed=seed, source=str(lab.source.resolve()))
    except AnnotationError as e:
        raise BenchError(str(e)) from None
    cats = sorted({t.category for t in trials})
    encoder = store.text_encoder if store.text_encoder is not None else store.embedder  # ONNX tower when current
    text = class_embeddings(encoder, cats, ts)
    credit, picked = score_trials(trials, lab.vectors, dict(zip(cats, text)))
    metrics, per_category = forced_choice_metrics(trials, credit)
    metrics["n_items"] = len(lab.items)
    metrics["n_skipped"] = len(lab.skipped)
    meta = report_meta(store, "forced_choice", ways=ways, seed=seed, n_trials=len(trials), templates=ts,
                       labeled=str(lab.source.resolve()), labeled_kind=lab.kind,
                       trials_file=str(Path(tfile).resolve()), trials_sha256=sha256_file(tfile),
                       nearest_s=nearest_s if lab.kind == "csv" else None,
                       metric="the category's text vector (normalised mean of its template embeddings) against each "
                              "candidate's image vector; highest cosine picks; a tie at the top shares the credit; "
                              "Wilson 95 % interval")
    per_trial = [{"id": t.id, "category": t.category, "target": t.target, "picked": t.candidates[int(p)],
                  "picked_category": t.categories[int(p)], "credit": float(c)}
                 for t, p, c in zip(trials, picked, credit)]
    plot = _accuracy_plot(per_category, float(metrics["acc"]), float(metrics["chance_acc"]),
                          f"{ways}-way forced choice, {len(trials)} trials")
    written = write_report(out, name, metrics, meta,
                           tables={"categories": per_category, "trials": per_trial, "skipped": lab.skipped},
                           plots={"accuracy": plot})
    written["trials"] = Path(tfile)
    notes = []
    if lab.skipped:
        notes.append(f"{len(lab.skipped)} labeled rows skipped (see the report's skipped table)")
    small = [r["category"] for r in per_category if r["n"] < 10]
    if small:
        notes.append(f"{len(small)} categories have fewer than 10 trials: their intervals are wide")
    return BenchResult(name, metrics, meta, written, notes)
