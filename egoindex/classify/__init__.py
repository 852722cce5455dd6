"""Video classification with a store's model: zero-shot from label names, and linear probes.

* :func:`classify_video`: one video (file or frames) -> top labels for the whole video and per
  clip window, zero-shot (prompt-ensembled text classifiers) or with a saved linear head;
* :func:`run_probe`: a folder-per-class dataset -> a linear head trained on the store model's
  pooled video features, with a report (accuracy, per-class metrics, confusion matrix, learning
  curves) that says how linearly separable the classes are in that model's feature space.
"""

from egoindex.errors import ClassifyError
from egoindex.classify.linear_head import LinearHead, load_head
from egoindex.classify.predict import DEFAULT_FPS, ClassifyResult, classify_video
from egoindex.classify.probe import ProbeResult, run_probe  # noqa
from egoindex.classify.zero_shot import DEFAULT_TEMPLATES, MAX_LABELS

__all__ = ["ClassifyError", "ClassifyResult", "DEFAULT_FPS", "DEFAULT_TEMPLATES", "LinearHead", "MAX_LABELS",
           "ProbeResult", "classify_video", "load_head", "run_probe"]
