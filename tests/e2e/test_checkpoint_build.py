"""``egoindex build`` from the checkpoint forms users have (not only egoindex's own).

Real CLI subprocesses on the session's demo shards: an open_clip_train ``epoch_1.pt`` (run name in
``name``, ``module.`` keys, written as its main.py writes it) with and without ``--model``, and a
Hugging Face hub folder whose config asks for a non-default preprocessing. The store's vectors must
be those of plain open_clip loading the same file (so no weight was lost or left random), the
store must record the model, checkpoint form and preprocessing, and ``egoindex info`` must show them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from egoindex.dataset.shards import list_shards
from egoindex.model.embed import Preprocessing, crop_jpeg
from egoindex.model.openclip import create
from egoindex.store import Store
from egoindex.store.layout import StoreMeta
from egoindex.store.schema import vectors_of
from tests.e2e.test_store import build_cli, cli, frame_samples, read_table, said
from tests.unit.test_checkpoint_forms import HUB_PP, run_name, write_epoch, write_hub_folder

TINY = "ego-tiny-vit"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: v.clone() for k, v in create(TINY).model.state_dict().items()}


def plain_open_clip(weights_path: Path, samples: list[tuple[str, bytes, dict]], pp: dict | None = None) -> tuple[
        np.ndarray, np.ndarray]:
    """Embeddings of the samples' JPEGs by open_clip alone, loading ``weights_path`` itself: through
    its own transform, and through egoindex's uint8 crop normalised as open_clip says."""
    pp = pp or {}
    model, _, pre = open_clip.create_model_and_transforms(
        TINY, pretrained=str(weights_path), image_mean=pp.get("mean"), image_std=pp.get("std"),
        image_interpolation=pp.get("interpolation"))
    model.eval()
    cfg = model.visual.preprocess_cfg
    mean, std = (torch.tensor(cfg[k]).view(1, 3, 1, 1) * 255 for k in ("mean", "std"))
    with torch.no_grad():
        ref = torch.stack([pre(Image.open(io.BytesIO(b)).convert("RGB")) for _, b, _ in samples])
        own = model.encode_image(ref)
        crops = np.stack([crop_jpeg(b, Preprocessing.of(model)) for _, b, _ in samples])
        x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() - mean) / std
        same_crop = model.encode_image(x)
    norm = torch.nn.functional.normalize
    return norm(own, dim=-1).numpy(), norm(same_crop, dim=-1).numpy()


def store_vectors(store: Path, keys: list[str]) -> np.ndarray:
    frames = read_table(store, "frames")
    pos = {k: i for i, k in enumerate(frames["key"].to_pylist())}
    return vectors_of(frames["vector"], StoreMeta.read(store).embed_dim)[[pos[k] for k in keys]]


def check_vectors(store: Path, shards: Path, weights_path: Path, pp: dict | None = None) -> None:
    samples = frame_samples(list_shards(shards)[0], 8)
    got = store_vectors(store, [k for k, _, _ in samples])
    own, same_crop = plain_open_clip(weights_path, samples, pp)
    assert ((got * same_crop).sum(axis=1) > 0.999).all(), (got * same_crop).sum(axis=1)  # the same weights
    assert ((got * own).sum(axis=1) > 0.99).all(), (got * own).sum(axis=1)  # open_clip's resampling, within rounding


def test_open_clip_train_checkpoint_builds_with_and_without_model(demo_shards: Path, weights, tmp_path: Path) -> None:
    name = run_name(TINY)
    ckpt = write_epoch(tmp_path / "logs" / name / "checkpoints" / "epoch_1.pt", weights, name)
    for extra in ((), ("--model", TINY)):
        store = tmp_path / f"store{len(extra)}"
        proc = build_cli(ckpt, demo_shards, store, *extra)
        assert proc.returncode == 0, said(proc)[-2000:]
        meta = StoreMeta.read(store)
        assert (meta.model, meta.checkpoint, meta.checkpoint_form, meta.checkpoint_run_name) == (
            TINY, str(ckpt.resolve()), "open_clip_train", name)
        assert meta.preprocessing["mean"] == list(open_clip.OPENAI_DATASET_MEAN)
        check_vectors(store, demo_shards, ckpt)
    # the store re-loads the epoch file to embed queries (its run name is no model: the store's model is used)
    s = Store(tmp_path / "store0", device="cpu")
    q = s.embedder.encode_texts(["the baby grabs the red ball"])
    assert q.shape == (1, meta.embed_dim) and np.isfinite(q).all()
    facts = json.loads(cli("info", tmp_path / "store0", "--json").stdout)
    assert (facts["checkpoint_form"], facts["checkpoint_run_name"]) == ("open_clip_train", name)
    table = said(cli("info", tmp_path / "store0"))
    assert "checkpoint_form │ open_clip_train" in table and f"checkpoint_run_name │ {name}" in table

    # a run name naming no model, and no --model: refused before anything is written
    other = write_epoch(tmp_path / "custom" / "epoch_1.pt", weights, "my-finetune")
    proc = build_cli(other, demo_shards, tmp_path / "refused")
    assert proc.returncode != 0 and not (tmp_path / "refused").exists()
    assert "'my-finetune'" in said(proc) and "run name" in said(proc) and "--model" in said(proc)


def test_hub_folder_builds_with_its_own_preprocessing(demo_shards: Path, weights, tmp_path: Path) -> None:
    folder = write_hub_folder(tmp_path / "tiny-clip", weights)
    store = tmp_path / "store"
    proc = build_cli(folder, demo_shards, store)
    assert proc.returncode == 0, said(proc)[-2000:]
    meta = StoreMeta.read(store)
    assert (meta.model, meta.checkpoint, meta.checkpoint_form) == (TINY, str(folder.resolve()), "hf_folder")
    assert meta.preprocessing == {"image_size": 64, "mean": list(HUB_PP["mean"]), "std": list(HUB_PP["std"]),
                                  "interpolation": "bilinear", "resize_mode": "shortest"}
    check_vectors(store, demo_shards, folder / "open_clip_model.safetensors", HUB_PP)
    facts = json.loads(cli("info", store, "--json").stdout)
    assert facts["checkpoint_form"] == "hf_folder" and facts["preprocessing"]["interpolation"] == "bilinear"
    table = said(cli("info", store))
    assert "checkpoint_form │ hf_folder" in table and "mean [0.5, 0.4, 0.3]" in table and "bilinear" in table
    # queries re-load the folder, with its preprocessing
    assert Store(store, device="cpu").embedder.pp.mean == HUB_PP["mean"]
