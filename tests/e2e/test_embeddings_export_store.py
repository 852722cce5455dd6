"""``egoindex export embeddings`` on the demo store (trained checkpoint, real shards, real Whisper captions).

What the unit tests cannot show: the text vectors that the store's model makes for captions it holds
no vector of (clips join several utterances) are that model's text embeddings, and the sprite's
thumbnails are the frames' JPEGs out of the ingest's shards (read back here with webdataset).
"""

from __future__ import annotations

import glob
import io
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from google.protobuf import text_format
from PIL import Image
from typer.testing import CliRunner

from egoindex.cli.main import app
from egoindex.dataset.shards import list_shards
from egoindex.store import Store

runner = CliRunner()


def cli(*args: object) -> str:
    res = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def load_parts(out: Path, sub: str) -> list[np.ndarray]:
    return [np.load(f) for f in sorted(glob.glob(str(out / sub / "*.npy")))]


def store_vectors(store: Store, table: str) -> tuple[list[dict], np.ndarray]:
    t = store.table(table).to_arrow()
    return t.drop(["vector"]).to_pylist(), np.stack(t["vector"].to_numpy(zero_copy_only=False)).astype(np.float32)


@pytest.mark.slow
def test_clips_text_vectors_are_the_store_models(demo_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb"
    cli("export", "embeddings", demo_store, out, "--level", "clips", "--rows-per-file", 50, "-f", "clip-retrieval",
        "-q")
    store = Store(demo_store)
    rows, vecs = store_vectors(store, "clips")
    img, txt = load_parts(out, "img_emb"), load_parts(out, "text_emb")
    metas = [pq.read_table(f) for f in sorted(glob.glob(str(out / "metadata" / "*.parquet")))]
    assert len(img) == len(txt) == len(metas) == math.ceil(len(rows) / 50)
    assert [len(a) for a in img] == [len(a) for a in txt] == [m.num_rows for m in metas]
    assert all(a.dtype == np.float16 for a in img + txt)
    meta = [r for m in metas for r in m.to_pylist()]
    np.testing.assert_allclose(np.concatenate(img).astype(np.float32), vecs, atol=1e-3)
    assert [(m["video_uid"], m["start"], m["end"], m["caption"]) for m in meta] == \
        [(r["video_uid"], r["start"], r["end"], r["text"]) for r in rows]
    text = np.concatenate(txt).astype(np.float32)
    urows, uvecs = store_vectors(store, "utterances")
    by_text = {(r["video_uid"], r["text"]): v for r, v in zip(urows, uvecs)}
    sources = [m["text_source"] for m in meta]
    assert "model" in sources and "utterance" in sources  # the demo has clips with one and with several utterances
    model_rows = [i for i, s in enumerate(sources) if s == "model"]
    want = store.embedder.encode_texts([meta[i]["caption"] for i in model_rows])
    np.testing.assert_allclose(text[model_rows], want, atol=2e-3)
    for i, m in enumerate(meta):
        if m["text_source"] == "utterance":
            np.testing.assert_allclose(text[i], by_text[(m["video_uid"], m["caption"])], atol=1e-3)
        elif m["text_source"] == "none":
            assert m["caption"] == "" and not text[i].any()
    summary = json.loads((out / "embeddings_summary.json").read_text())
    assert summary["clip_retrieval"]["text_sources"]["model"] == len(model_rows)


@pytest.mark.slow
def test_frames_projector_sprite_shows_the_shard_frames(demo_store: Path, demo_shards: Path, tmp_path: Path) -> None:
    from tensorboard.plugins.projector.projector_config_pb2 import ProjectorConfig

    out = tmp_path / "emb"
    cli("export", "embeddings", demo_store, out, "-f", "projector", "--max-points", 20, "--thumb-size", 32,
        "--seed", 5, "-q")
    proj = out / "projector"
    cfg = text_format.Parse((proj / "projector_config.pbtxt").read_text(), ProjectorConfig()).embeddings[0]
    assert list(cfg.tensor_shape)[0] == 20 and list(cfg.sprite.single_image_dim) == [32, 32]
    picked = json.loads((out / "embeddings_summary.json").read_text())["projector"]["rows"]
    rows, vecs = store_vectors(Store(demo_store), "frames")
    tsv = np.loadtxt(proj / "vectors.tsv", delimiter="\t", dtype=np.float32)
    np.testing.assert_allclose(tsv, vecs[picked], rtol=1e-6, atol=1e-7)
    lines = (proj / "metadata.tsv").read_text().splitlines()
    assert lines[0] == "video\ttime\tend\tsplit\tlevel\ttext" and len(lines) == 21
    # every frame's JPEG, read back from the shards (both frame series; clips/ holds moments) with webdataset
    tars = [str(p) for p in list_shards(demo_shards)]
    jpgs = {s["__key__"]: s["jpg"] for s in wds.WebDataset(tars, shardshuffle=False, empty_check=False)}
    sprite = Image.open(proj / "sprite.png").convert("RGB")
    cols = math.ceil(math.sqrt(20))
    assert sprite.size == (cols * 32, math.ceil(20 / cols) * 32)
    for k, i in enumerate(picked):
        im = Image.open(io.BytesIO(jpgs[rows[i]["key"]])).convert("RGB")
        w, h = im.size
        s = min(w, h)
        want = np.asarray(im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
                          .resize((32, 32), Image.Resampling.BILINEAR), np.float32)
        tile = np.asarray(sprite.crop(((k % cols) * 32, (k // cols) * 32, (k % cols + 1) * 32, (k // cols + 1) * 32)),
                          np.float32)
        assert np.abs(tile - want).mean() < 2.0, (k, i)
