"""Does a model see frame order, and could it? A diagnostic on the motion corpus' clip shards.

    .venv/bin/python scripts/order_probe.py CHECKPOINT SHARDS_DIR [--out order_probe.json]

CHECKPOINT is a clip checkpoint (``train --model NAME-video``) or a frame checkpoint; SHARDS_DIR an
ingest of ``egoindex demo-data --motion`` (its clip shards carry the direction as ``tag_verb``, an
index into ``egoindex.demo.vocab.MOTION_ACTIONS``). Every clip is read at 4 segment-middle frames.

* reversed-clip accuracy (clip checkpoints): the share of train and of val clips whose narration is
  closer to the clip than to the same frames reversed, with the mean margin (what ``bench motion``
  scores on a store, here without building one and on the training videos too);
* what the frame side holds (any checkpoint): a logistic regression from the 4 frame vectors
  (concatenated) to the direction (4 classes: left, right, up, down), fitted on the train clips,
  scored on the val clips; and the same from the image tower's last feature grid average-pooled to
  2 x 2 cells (the spatial adapter's input). Chance is 25 %; the axis alone (visible in any single
  frame) gives at most 50 %.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.linear_model import LogisticRegression

from egoindex.dataset.shards import clip_sample_frames, iter_samples, list_clip_shards
from egoindex.model.clip_video import load_embedding_model
from egoindex.model.pooling import segment_indices
from egoindex.model.spatial import feature_grid


def read(shards: Path, split: str, preprocess, frames: int) -> tuple[list[torch.Tensor], list[str], np.ndarray]:
    videos, texts, labels = [], [], []
    for s in iter_samples(list_clip_shards(shards, split)):
        meta, jpegs = clip_sample_frames(s)
        idx = segment_indices(len(jpegs), frames).tolist()
        videos.append(torch.stack([preprocess(Image.open(io.BytesIO(jpegs[i])).convert("RGB")) for i in idx]))
        texts.append(s["txt"].decode("utf-8").strip())
        tags = (meta.get("utterance") or {}).get("tag_verb") or [-1]
        labels.append(int(tags[0]))
    return videos, texts, np.array(labels)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("shards", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args(argv)
    loaded = load_embedding_model(args.checkpoint)
    video_model = getattr(loaded, "video", None)
    clip = loaded.model.eval()
    out: dict = {"checkpoint": str(args.checkpoint), "shards": str(args.shards), "frames": 4}
    feats = {}
    for split in ("train", "val"):
        videos, texts, labels = read(args.shards, split, loaded.preprocess, 4)
        if not videos or (labels < 0).any():
            print(f"{args.shards}: {split} clips without direction tags; is it an ingest of demo-data --motion?")
            return 2
        x = torch.stack(videos)
        with torch.no_grad():
            vecs = F.normalize(clip.encode_image(x.flatten(0, 1)), dim=-1).view(len(x), 4, -1)
            grid = F.adaptive_avg_pool2d(feature_grid(clip.visual, x.flatten(0, 1)), 2).reshape(len(x), -1)
            if video_model is not None:
                t = F.normalize(clip.encode_text(loaded.tokenizer(texts)), dim=-1)
                margin = ((t * video_model.pool(vecs, normalize=True)).sum(-1)
                          - (t * video_model.pool(vecs.flip(1), normalize=True)).sum(-1)).numpy()
                out[f"reversed_acc_{split}"] = round(100 * float((margin > 0).mean()), 1)
                out[f"reversed_margin_{split}"] = round(float(margin.mean()), 4)
        feats[split] = (vecs.reshape(len(x), -1).numpy(), grid.numpy(), labels)
        out[f"n_{split}"] = len(x)
    for name, k in (("frame_vectors", 0), ("tower_grid", 1)):
        clf = LogisticRegression(C=1.0, max_iter=5000).fit(feats["train"][k], feats["train"][2])
        out[f"direction_probe_{name}_val"] = round(100 * clf.score(feats["val"][k], feats["val"][2]), 1)
    for key, value in out.items():
        print(f"{key:36s} {value}")
    if args.out:
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
