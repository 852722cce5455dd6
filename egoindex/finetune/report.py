"""``OUT/report/``: the fine-tune's test evaluation as the project's benchmark report, plus its figures.

Written with :func:`egoindex.core.report.write_report` (``report.json`` + ``report.md`` + one PNG
per plot), so ``egoindex bench compare OUT_A/report/report.json OUT_B/report/report.json`` puts
runs (and linear probes, which write the same format) side by side. Files:

* ``report.json`` / ``report.md``: metrics (test top-1 / top-5 over ``test_clips x test_crops``
  views and over one view, val top-1 of the best epoch, macro P/R/F1, chance), per-class
  precision / recall / F1 with the split counts, the confusion matrix, every test prediction
  (with its top 5), the epoch history, skipped videos;
* ``classification_report.txt``: scikit-learn's classification report of the test split;
* ``report_confusion.png`` (counts), ``report_confusion_normalised.png`` (rows sum to 1),
  ``report_learning_curves.png``, ``report_class_distribution.png``,
  ``report_sample_predictions.png`` (frames with true and predicted class),
  ``report_saliency.png`` (attention rollout, Grad-CAM or input gradients: :mod:`egoindex.model.saliency`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoindex.core.fsutil import atomic_open
from egoindex.core.report import write_report
from egoindex.finetune.plots import (plot_class_distribution, plot_confusion, plot_learning_curves, plot_saliency,
                                     plot_sample_predictions)
from egoindex.media.labelled import BENCH, LabelledVideo, VideoSet, video_set_sha256
from egoindex.model.saliency import saliency
from egoindex.model.video_checkpoint import LoadedClassifier
from egoindex.media.clip_sampling import sample_indices
from egoindex.media.clips import ClipCache
from egoindex.model.video_input import normalise, spatial_crops, to_float

__all__ = ["REPORT_NAME", "write_finetune_report"]

REPORT_NAME = "report"
SAMPLE_ROWS = 8
SALIENCY_ROWS = 3
FRAMES_SHOWN = 4


def _view(best: LoadedClassifier, cache: ClipCache, v: LabelledVideo) -> tuple[np.ndarray, torch.Tensor]:
    """The centre view of ``v``: its frames as uint8 (T, S, S, 3) and the normalised (1, T, C, S, S) input."""
    s = best.sampling.for_eval()
    decoded = cache.get(v.path, s.fps, s.short_side)
    x = spatial_crops(to_float(decoded.frames[sample_indices(len(decoded.frames), s)]), s.image_size, 1)[0]
    frames = (x.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)
    return frames, normalise(x, best.model.info["mean"], best.model.info["std"])[None]


def _shown(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, num=min(FRAMES_SHOWN, n)).round().astype(int))


def _pick(correct: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` rows, half right and half wrong where both exist, in test order."""
    right, wrong = list(np.flatnonzero(correct)), list(np.flatnonzero(~correct))
    take_wrong = min(len(wrong), max(k // 2, k - len(right)))
    return sorted(wrong[:take_wrong] + right[:k - take_wrong])


def write_finetune_report(out_dir: Path, *, best: LoadedClassifier, videoset: VideoSet,
                          parts: dict[str, list[LabelledVideo]], skipped: list[dict[str, str]], probs: np.ndarray,
                          reasons: list[str], scored: dict[str, Any], metrics: dict[str, Any],
                          history: list[dict[str, Any]], cache: ClipCache, config: dict[str, Any],
                          device: torch.device) -> dict[str, Path]:
    """Write the report (module docstring) and return the written paths by kind."""
    classes = videoset.classes
    test = parts["test"]
    counts = {p: [sum(v.label == c for v in vids) for c in classes] for p, vids in parts.items()}
    per_class = [{**row, "train": counts["train"][i], "val": counts["val"][i], "test": counts["test"][i]}
                 for i, row in enumerate(scored["per_class"])]
    cm = np.asarray(scored["confusion"])
    used = scored["used"]
    test_rows = []
    for i, v in enumerate(test):
        if not used[i]:
            continue
        order = np.argsort(-probs[i], kind="stable")
        test_rows.append({"video": v.rel, "class": v.label, "predicted": classes[int(order[0])],
                          "prob": float(probs[i, order[0]]), "correct": classes[int(order[0])] == v.label,
                          "top5": ", ".join(classes[int(j)] for j in order[:5])})
    unscored = [{"video": v.rel, "class": v.label, "reason": r} for v, r in zip(test, reasons) if r]
    info = best.model.info
    meta = {"model": f"finetune:{info['backbone']}", "checkpoint_sha256": best.sha256, "bench": BENCH,
            "test_set_sha256": video_set_sha256([r["video"] for r in test_rows]), "backbone": info["backbone"],
            "weights": info.get("weights"), "dataset": config["dataset"], "source": config["source"],
            "classes": classes, "sampling": best.sampling.as_dict(), "config": config["finetune"],
            "best_checkpoint": str(best.path)}
    tables = {
        "per_class": per_class,
        "confusion_matrix": [{"true": c, **{p: int(cm[i, j]) for j, p in enumerate(classes)}}
                             for i, c in enumerate(classes)],
        "test_predictions": test_rows,
        "history": list(history),
        "skipped": list(skipped) + unscored,
    }
    title = f"{info['backbone']} @ {best.sha256[:8]}"
    ok_idx = [i for i in range(len(test)) if used[i]]
    correct = np.array([test_rows[j]["correct"] for j in range(len(ok_idx))], bool)
    sample_rows, saliency_rows = [], []
    for j in _pick(correct, SAMPLE_ROWS):
        i = ok_idx[j]
        frames, _ = _view(best, cache, test[i])
        sample_rows.append({"frames": frames[_shown(len(frames))], "true": test[i].label,
                            "pred": test_rows[j]["predicted"], "prob": test_rows[j]["prob"]})
    for j in _pick(correct, SALIENCY_ROWS):
        i = ok_idx[j]
        frames, x = _view(best, cache, test[i])
        target = classes.index(test_rows[j]["predicted"])
        maps, method = saliency(best.model, x.to(device), target)
        keep = _shown(len(frames))
        saliency_rows.append({"frames": frames[keep], "maps": maps[keep], "method": method,
                              "label": f"predicted {test_rows[j]['predicted']} (true {test[i].label})"})
    chance = 1.0 / len(classes)
    plots: dict[str, Any] = {
        "confusion": lambda p: plot_confusion(p, cm, classes, f"test confusion (counts), {title}", False),
        "confusion_normalised": lambda p: plot_confusion(p, cm, classes, f"test confusion (row-normalised), {title}", True),
        "learning_curves": lambda p: plot_learning_curves(p, history, chance, f"fine-tune, {title}"),
        "class_distribution": lambda p: plot_class_distribution(p, classes, counts, f"videos per class ({config['source']})"),
    }
    if sample_rows:
        plots["sample_predictions"] = lambda p: plot_sample_predictions(p, sample_rows, f"test predictions, {title}")
    if saliency_rows:
        plots["saliency"] = lambda p: plot_saliency(p, saliency_rows, f"where the model looks, {title}")
    written = write_report(out_dir, REPORT_NAME, metrics, meta, tables, plots)
    written["classification_report"] = out_dir / "classification_report.txt"
    with atomic_open(written["classification_report"], "w") as f:
        f.write(str(scored["classification_report"]) or "(no test predictions)\n")
    return written
