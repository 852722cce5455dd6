"""Linear probe: how well a store model's video features separate the classes of a labelled dataset.

Why a linear probe: it is the standard measure of a representation (CLIP, Radford et al. 2021,
sec. 3.2): freeze the model, train only a logistic regression on its features. If a linear head
cannot separate the classes, the features do not encode them; if it can, the head is also a
cheap classifier for the server and ``egoindex classify --head``.

Steps (:func:`run_probe`):

1. scan ``DATASET/<class>/*`` (:mod:`egoindex.classify.dataset`); refuse classes with fewer than
   3 videos (one each for train, val and test);
2. per video, embed its clip windows like the build does and pool them (normalised mean,
   :mod:`egoindex.classify.video_features`), cached per video in ``OUT/features`` so a rerun or
   a resumed run does not re-embed; undecodable videos are recorded as skips with the reason;
3. split per class with a seeded shuffle into train / val / test (``fractions``, at least one
   video of every class in each part: sklearn's stratified splitters can leave a small class out
   of val or test, which would make per-class test metrics meaningless);
4. fit ``LogisticRegression`` on the L2-normalised features for each C of a grid, keep the C with
   the best val accuracy (then the lower val log-loss, then the smaller C), and refit it on
   train + val for the saved head;
5. score test: top-1, top-5, per-class precision / recall / F1, confusion matrix; learning
   curves (val and test accuracy against training videos per class);
6. write ``report.json`` / ``report.md`` / ``report_confusion.png`` /
   ``report_learning_curves.png`` (the benchmark report format, so ``egoindex bench compare``
   lines probes of several checkpoints up) and the head (``head.npz`` + ``head.json``, no pickle).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from egoindex.version import __version__
from egoindex.classify.dataset import MIN_PER_CLASS, LabelledVideo, scan_dataset
from egoindex.media.labelled import BENCH, check_fractions, split_per_class, video_set_sha256
from egoindex.errors import ClassifyError
from egoindex.classify.feature_cache import FeatureCache
from egoindex.classify.linear_head import POOLING, LinearHead
from egoindex.classify.probe_plots import plot_confusion, plot_learning_curves
from egoindex.classify.video_features import features_of_video
from egoindex.core.progress import progress_bar
from egoindex.core.report import write_report
from egoindex.model.video import INGEST_JPEG_QUALITY, INGEST_SHORT_SIDE

__all__ = ["DEFAULT_C_GRID", "ProbeResult", "run_probe", "split_per_class"]

#: Inverse regularisation strengths tried. Features are unit vectors, so logits are small unless C
#: is large: the grid reaches far up.
DEFAULT_C_GRID: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
REPORT_NAME = "report"


@dataclass
class ProbeResult:
    """What a probe found; ``written`` maps "json", "md", "plot:*", "head", "head_meta" to paths."""

    metrics: dict[str, Any]
    classes: list[str]
    confusion: np.ndarray
    per_class: list[dict[str, Any]]
    skipped: list[dict[str, str]]
    head: LinearHead
    written: dict[str, Path] = field(default_factory=dict)
    embedded_now: int = 0
    from_cache: int = 0


def _too_few(counts: dict[str, int], why: str) -> None:
    few = {c: n for c, n in counts.items() if n < MIN_PER_CLASS}
    if few:
        listed = ", ".join(f"{c!r} ({n})" for c, n in sorted(few.items()))
        raise ClassifyError(f"every class needs at least {MIN_PER_CLASS} videos (one each for train, val and test){why}; "
                            f"too few: {listed}")


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Any:
    # lazy for the same reason as in run_probe: only a probe run needs sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, max_iter=5000, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


def _probs(clf: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """predict_proba over all ``n_classes`` (a model fit on a subset gives zeros for the rest)."""
    p = np.zeros((len(x), n_classes))
    p[:, clf.classes_] = clf.predict_proba(x)
    return p


def _topk(p: np.ndarray, y: np.ndarray, k: int) -> float:
    if len(y) == 0:
        return float("nan")
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return float(np.mean([y[i] in top[i] for i in range(len(y))]))


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))


def _embed_all(store: Any, videos: list[LabelledVideo], cache: FeatureCache, fps: float, clip_seconds: float,
               clip_stride: float, progress: bool) -> tuple[dict[str, np.ndarray], list[dict[str, str]], int, int]:
    vectors: dict[str, np.ndarray] = {}
    skipped: list[dict[str, str]] = []
    embedded = cached = 0
    with progress_bar("probe", enabled=progress) as bar:
        task = bar.add_task("embedding videos", total=len(videos))
        for v in videos:
            try:
                key = cache.key(v.path, v.rel)
            except OSError as e:
                skipped.append({"video": v.rel, "class": v.label, "reason": f"cannot stat: {e}"})
                bar.advance(task)
                continue
            vec, reason = cache.get(key)
            if vec is None and reason is None:
                try:
                    if hasattr(store, "video_vector"):  # a video backbone (classify/backbone_features.py)
                        vec, n_frames, n_clips = store.video_vector(v.path)
                    else:  # a store's (or an open_clip checkpoint's) frame model: its clip windows pooled
                        f = features_of_video(store.embedder, v.path, fps=fps, clip_seconds=clip_seconds,
                                              clip_stride=clip_stride)
                        vec, n_frames, n_clips = f.video, f.n_frames, len(f.windows)
                except ClassifyError as e:
                    reason = str(e)
                    cache.put_skip(key, v.rel, reason)
                else:
                    cache.put(key, vec, v.rel, n_frames, n_clips)
                    embedded += 1
            elif vec is not None:
                cached += 1
            if vec is not None:
                vectors[v.rel] = vec
            else:
                skipped.append({"video": v.rel, "class": v.label, "reason": str(reason)})
            bar.advance(task)
    return vectors, skipped, embedded, cached


def run_probe(
    store: Any,  # a Store, or a source of egoindex.classify.backbone_features
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    fps: float = 2.0,
    clip_seconds: float | None = None,
    clip_stride: float | None = None,
    c_grid: Sequence[float] = DEFAULT_C_GRID,
    progress: bool = True,
) -> ProbeResult:
    """Train and evaluate a linear head on ``store``'s model for the videos in ``dataset_dir``
    (see the module docstring); write the report and the head to ``out_dir``.

    Resumable: video features are cached in ``out_dir/features``, so a rerun with the same
    settings embeds nothing again. Raises :class:`ClassifyError` for an unusable dataset (fewer
    than two classes, a class with fewer than 3 usable videos) or bad settings.
    """
    # sklearn is imported here, not at the top: `import egoindex.classify` (the server, `egoindex
    # classify`) must not pay for it; only a probe run needs it.
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    t0 = time.time()
    fr = check_fractions(fractions)
    if fps <= 0 or fps > 60:
        raise ClassifyError("fps must be in (0, 60]")
    grid = sorted({float(c) for c in c_grid})
    if not grid or any(c <= 0 for c in grid):
        raise ClassifyError("the C grid needs positive values")
    clip_seconds = float(store.meta.clip_seconds if clip_seconds is None else clip_seconds)
    clip_stride = float(store.meta.clip_stride if clip_stride is None else clip_stride)
    dataset_dir, out = Path(dataset_dir), Path(out_dir)

    classes, videos = scan_dataset(dataset_dir)
    _too_few({c: sum(v.label == c for v in videos) for c in classes}, "")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"model": store.model_name, "checkpoint_sha256": store.checkpoint_sha256, "fps": fps,
                "clip_seconds": clip_seconds, "clip_stride": clip_stride, "short_side": INGEST_SHORT_SIDE,
                "jpeg_quality": INGEST_JPEG_QUALITY, "pooling": POOLING}
    source = getattr(store, "source", None)  # a video backbone: its name, weights, sampling and views
    if source is not None:
        settings["features"] = source
    cache = FeatureCache(out / "features", settings)
    vectors, skipped, embedded, cached = _embed_all(store, videos, cache, fps, clip_seconds, clip_stride, progress)
    t_embed = time.time() - t0
    usable = [v for v in videos if v.rel in vectors]
    _too_few({c: sum(v.label == c for v in usable) for c in classes},
             f" after {len(skipped)} video(s) could not be decoded" if skipped else "")

    cls_index = {c: i for i, c in enumerate(classes)}
    x = np.stack([vectors[v.rel] for v in usable]).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    y = np.array([cls_index[v.label] for v in usable])
    part = split_per_class([v.label for v in usable], fr, seed)
    tr, va, te = part == "train", part == "val", part == "test"
    n_cls = len(classes)
    k5 = min(5, n_cls)

    t1 = time.time()
    search = []
    for c in grid:
        p = _probs(_fit(x[tr], y[tr], c, seed), x[va], n_cls)
        search.append({"C": c, "val_top1": _topk(p, y[va], 1), "val_log_loss": _log_loss(p, y[va])})
    best = min(search, key=lambda r: (-r["val_top1"], r["val_log_loss"], r["C"]))
    c_best = best["C"]
    final = _fit(x[tr | va], y[tr | va], c_best, seed)
    p_test = _probs(final, x[te], n_cls)
    pred = p_test.argmax(axis=1)

    # learning curves: the first n (shuffled) training videos of every class, C fixed
    order = np.flatnonzero(tr)
    per_class_train = {c: [i for i in order if y[i] == c] for c in range(n_cls)}
    max_n = max(len(v) for v in per_class_train.values())
    steps = sorted({int(round(s)) for s in np.linspace(1, max_n, num=min(max_n, 8))})
    curve = []
    for n in steps:
        sub = np.array([i for c in range(n_cls) for i in per_class_train[c][:n]])
        clf = _fit(x[sub], y[sub], c_best, seed)
        curve.append({"train_per_class": n, "train_videos": int(len(sub)),
                      "val_top1": _topk(_probs(clf, x[va], n_cls), y[va], 1),
                      "test_top1": _topk(_probs(clf, x[te], n_cls), y[te], 1)})
    t_train = time.time() - t1

    prec, rec, f1, support = precision_recall_fscore_support(y[te], pred, labels=list(range(n_cls)), zero_division=0)
    cm = confusion_matrix(y[te], pred, labels=list(range(n_cls)))
    per_class = [{"class": c, "precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                  "support": int(support[i]), "train": int((tr & (y == i)).sum()), "val": int((va & (y == i)).sum()),
                  "test": int((te & (y == i)).sum())} for i, c in enumerate(classes)]
    counts = np.bincount(y[te], minlength=n_cls)
    metrics: dict[str, Any] = {
        "test_top1": _topk(p_test, y[te], 1), "test_top5": _topk(p_test, y[te], k5),
        "val_top1": best["val_top1"], "macro_precision": float(np.mean(prec)), "macro_recall": float(np.mean(rec)),
        "macro_f1": float(np.mean(f1)), "chance_top1": 1.0 / n_cls, "majority_top1": float(counts.max() / counts.sum()),
        "C": c_best, "n_classes": n_cls, "n_videos": len(videos), "n_used": len(usable), "n_skipped": len(skipped),
        "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_test": int(te.sum()),
        "embedded_now": embedded, "from_cache": cached,
        "embed_seconds": round(t_embed, 2), "train_seconds": round(t_train, 2),
    }
    head = LinearHead.from_sklearn(final, names=classes, model=store.model_name, checkpoint_sha256=store.checkpoint_sha256, fps=fps,
                                   clip_seconds=clip_seconds, clip_stride=clip_stride,
                                   extra={"C": c_best, "trained_on": "train + val", "n_train": int((tr | va).sum()),
                                          "test_top1": metrics["test_top1"], "dataset": str(dataset_dir)})
    npz, head_meta = head.save(out)

    meta = {"model": store.model_name, "checkpoint_sha256": store.checkpoint_sha256, "bench": BENCH,
            "test_set_sha256": video_set_sha256([usable[i].rel for i in np.flatnonzero(te)]), "store": str(getattr(store, "location", store.root)),
            "dataset": str(dataset_dir), "classes": classes, "seed": seed, "fractions": list(fr), "fps": fps,
            "clip_seconds": clip_seconds, "clip_stride": clip_stride, "pooling": POOLING, "C_grid": grid,
            "top5_k": k5, "head": str(npz), "egoindex_version": __version__,
            "features": source or {"kind": "frame-model", "model": store.model_name}}
    names = {i: c for i, c in enumerate(classes)}
    test_rows = [{"video": usable[i].rel, "class": usable[i].label, "predicted": names[int(pred[j])],
                  "prob": float(p_test[j, pred[j]]), "correct": bool(pred[j] == y[i])}
                 for j, i in enumerate(np.flatnonzero(te))]
    tables = {
        "per_class": per_class,
        "confusion_matrix": [{"true": c, **{p: int(cm[i, j]) for j, p in enumerate(classes)}} for i, c in enumerate(classes)],
        "C_search": search,
        "learning_curve": curve,
        "test_predictions": test_rows,
        "skipped": skipped,
        "split": [{"video": v.rel, "class": v.label, "split": str(part[i])} for i, v in enumerate(usable)],
    }
    title = f"{store.model_name} @ {store.checkpoint_sha256[:8]}"
    plots = {
        "confusion": lambda p: plot_confusion(p, cm, classes, f"test confusion, {title}"),
        "learning_curves": lambda p: plot_learning_curves(p, [r["train_per_class"] for r in curve],
                                                          [r["val_top1"] for r in curve],
                                                          [r["test_top1"] for r in curve], 1.0 / n_cls,
                                                          f"linear probe, {title}"),
    }
    written = write_report(out, REPORT_NAME, metrics, meta, tables, plots)
    written.update(head=npz, head_meta=head_meta)
    return ProbeResult(metrics, list(classes), cm, per_class, skipped, head, written, embedded, cached)
