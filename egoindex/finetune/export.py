"""Export a fine-tuned classifier: ONNX and/or TorchScript, checked against PyTorch.

``egoindex finetune export OUT --onnx [--torchscript]`` writes into ``OUT/export/``:

* ``model.onnx`` (input ``clip`` float32 ``(batch, T, 3, S, S)``, normalised; output ``logits``
  ``(batch, C)``; the batch axis is dynamic), through torch's TorchScript-based exporter as the
  store's text encoder is (:mod:`egoindex.model.text_onnx`);
* ``model.ts`` (``torch.jit.trace``) with ``--torchscript``;
* ``model.json``: classes in logit order, mean, std, frames, size, the sampling the model was
  trained with, and each file's parity: the maximum absolute difference of its logits from
  PyTorch's on the same inputs (a real test clip of the run when there is one, and a random one);
* ``onnx_example.py``: inference that needs only onnxruntime (and the numpy it ships with) on a
  ``.npy`` of uint8 frames ``(T, H, W, 3)``, H and W at least S: centre crop, normalise, run,
  print the top classes as JSON; ``sample_clip.npy``: such frames of one test video, so
  ``python onnx_example.py model.onnx sample_clip.npy`` runs as it is.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egoindex.core.fsutil import atomic_open, read_json, tmp_name, write_json
from egoindex.errors import ExportError, VideoError
from egoindex.model.backbones import dummy_clip
from egoindex.model.video_checkpoint import LoadedClassifier, load_classifier
from egoindex.media.clip_sampling import sample_indices
from egoindex.media.clips import decode_video
from egoindex.model.video_input import spatial_crops, to_float

__all__ = ["EXAMPLE", "ExportResult", "export_classifier"]

OPSET = 17

EXAMPLE = '''"""Classify a clip with the exported model; needs only onnxruntime (and numpy, which it installs).

    python onnx_example.py model.onnx frames.npy [--top 5]

frames.npy: uint8 RGB frames (T, H, W, 3), T = the model's frames, H and W >= its size (the
centre square is used; sample them from the video as model.json's "sampling" says).
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("frames")
    ap.add_argument("--top", type=int, default=5)
    a = ap.parse_args()
    meta = json.loads((Path(a.model).parent / "model.json").read_text(encoding="utf-8"))
    frames = np.load(a.frames)
    t, size = meta["num_frames"], meta["image_size"]
    if frames.ndim != 4 or frames.shape[0] != t or frames.shape[3] != 3 or min(frames.shape[1:3]) < size:
        raise SystemExit(f"expected uint8 frames ({t}, H>={size}, W>={size}, 3), got {frames.shape}")
    top, left = (frames.shape[1] - size) // 2, (frames.shape[2] - size) // 2
    x = frames[:, top:top + size, left:left + size].astype(np.float32) / 255.0
    x = (x - np.asarray(meta["mean"], np.float32)) / np.asarray(meta["std"], np.float32)
    clip = np.ascontiguousarray(x.transpose(0, 3, 1, 2)[None])  # (1, T, 3, S, S)
    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"clip": clip})[0][0]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    order = np.argsort(-p)[: a.top]
    print(json.dumps({"top": [{"label": meta["classes"][i], "prob": round(float(p[i]), 5)} for i in order],
                      "logits": [float(v) for v in logits]}))


if __name__ == "__main__":
    main()
'''


@dataclass
class ExportResult:
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)
    max_abs_diff: dict[str, float] = field(default_factory=dict)


def _sample_frames(run_dir: Path | None, loaded: LoadedClassifier) -> np.ndarray | None:
    """uint8 (T, S, S, 3) frames of the run's first test video (centre view), or None."""
    if run_dir is None or not (run_dir / "split.json").is_file():
        return None
    split = read_json(run_dir / "split.json")
    root = Path(read_json(run_dir / "config.json")["dataset"]) if (run_dir / "config.json").is_file() else None
    tests = [v["video"] for v in split.get("videos", []) if v.get("split") == "test"]
    if root is None or not tests:
        return None
    s = loaded.sampling.for_eval()
    try:
        decoded = decode_video(root / tests[0], s.fps, s.short_side)
    except (VideoError, OSError):
        return None
    x = spatial_crops(to_float(decoded.frames[sample_indices(len(decoded.frames), s)]), s.image_size, 1)[0]
    return (x.permute(0, 2, 3, 1).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _normalised(frames: np.ndarray, info: dict[str, Any]) -> torch.Tensor:
    x = torch.from_numpy(frames.astype(np.float32) / 255.0)
    x = (x - torch.tensor(info["mean"], dtype=torch.float32)) / torch.tensor(info["std"], dtype=torch.float32)
    return x.permute(0, 3, 1, 2)[None].contiguous()


@contextlib.contextmanager
def _quiet() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python branches on shapes: the shapes are fixed
        yield


def export_classifier(target: str | Path, *, out_dir: str | Path | None = None, onnx: bool = True,
                      torchscript: bool = False) -> ExportResult:
    """Export ``target`` (a fine-tune OUT folder or a checkpoint file) as the module docstring says."""
    if not onnx and not torchscript:
        raise ExportError("choose at least one of --onnx and --torchscript")
    target = Path(target)
    run_dir = target if target.is_dir() else (target.parent if (target.parent / "split.json").is_file() else None)
    loaded = load_classifier(target)
    model = loaded.model.float().eval()
    info = model.info
    folder = Path(out_dir) if out_dir is not None else (run_dir or target.parent) / "export"
    folder.mkdir(parents=True, exist_ok=True)
    frames = _sample_frames(run_dir, loaded)
    inputs = [dummy_clip(model, 1, seed=1)]
    if frames is not None:
        inputs.insert(0, _normalised(frames, info))
    batch = torch.cat(inputs)
    with torch.no_grad():
        ref = model(batch).numpy()
    res = ExportResult(folder)
    if onnx:
        import onnxruntime as ort

        path = folder / "model.onnx"
        tmp = tmp_name(path)
        try:
            with torch.no_grad(), _quiet():
                torch.onnx.export(model, (batch[:1],), str(tmp), input_names=["clip"], output_names=["logits"],
                                  dynamic_axes={"clip": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                                  dynamo=False)
            tmp.replace(path)
        except Exception as e:  # the exporter raises many kinds for unsupported operators
            tmp.unlink(missing_ok=True)
            raise ExportError(f"ONNX export of {info['backbone']} failed: {e}") from e
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(["logits"], {"clip": batch.numpy()})[0]
        res.files["onnx"] = path
        res.max_abs_diff["onnx"] = float(np.abs(got - ref).max())
    if torchscript:
        path = folder / "model.ts"
        try:
            with torch.no_grad(), _quiet():
                traced = torch.jit.trace(model, batch[:1], check_trace=False)
                with atomic_open(path, "wb") as f:
                    torch.jit.save(traced, f)
        except Exception as e:
            raise ExportError(f"TorchScript export of {info['backbone']} failed: {e}") from e
        with torch.no_grad():
            with _quiet():
                got = torch.jit.load(str(path))(batch).numpy()
        res.files["torchscript"] = path
        res.max_abs_diff["torchscript"] = float(np.abs(got - ref).max())
    meta = {"classes": loaded.classes, "backbone": info["backbone"], "num_frames": model.num_frames,
            "image_size": model.image_size, "mean": list(info["mean"]), "std": list(info["std"]),
            "input": "clip: float32 (batch, T, 3, S, S), (x / 255 - mean) / std; output logits (batch, C)",
            "sampling": loaded.sampling.as_dict(), "checkpoint": str(loaded.path), "checkpoint_sha256": loaded.sha256,
            "max_abs_diff": res.max_abs_diff, "parity_inputs": "a test clip of the run and a random clip"
            if frames is not None else "a random clip"}
    write_json(folder / "model.json", meta)
    res.files["meta"] = folder / "model.json"
    if onnx:
        with atomic_open(folder / "onnx_example.py", "w") as f:
            f.write(EXAMPLE)
        res.files["example"] = folder / "onnx_example.py"
        sample = frames if frames is not None else np.random.default_rng(0).integers(
            0, 256, (model.num_frames, model.image_size, model.image_size, 3), dtype=np.uint8)
        with atomic_open(folder / "sample_clip.npy", "wb") as f:
            np.save(f, sample)
        res.files["sample"] = folder / "sample_clip.npy"
    return res
