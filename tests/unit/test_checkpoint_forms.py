"""Checkpoint forms: every way users hold a model loads through the one resolver, with its own
preprocessing (egoindex.model.openclip ``resolve_checkpoint``/``load_model``/``create``,
egoindex.model.sources ``locate``/``checkpoint_sha256``).

Real open_clip models (the small registered ``ego-tiny-vit``, random weights), real files written
the way their tools write them: open_clip_train's ``epoch_N.pt`` as its main.py saves it, a hub
folder with open_clip's own ``save_config_for_hf``, safetensors via safetensors, a Hugging Face
cache laid out as huggingface_hub lays it out.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.push_to_hf_hub import save_config_for_hf
from safetensors.torch import save_file

from egoindex.model.embed import Embedder, Preprocessing
from egoindex.model.openclip import (
    ModelError,
    create,
    load_model,
    make_checkpoint,
    model_from_run_name,
    resolve_checkpoint,
    save_checkpoint,
)
from egoindex.model.sources import CONFIG_FILE, checkpoint_sha256, locate
from egoindex.store.layout import StoreMeta
from tests.support import torch_threads

TINY = "ego-tiny-vit"
# Not open_clip's defaults (OpenAI's mean/std, bicubic): a load that ignored them would show.
HUB_PP = {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.25, 0.3), "interpolation": "bilinear"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: v.clone() for k, v in create(TINY).model.state_dict().items()}


def run_name(model: str, lr: float = 5e-05) -> str:
    """open_clip_train/main.py's run name for ``--model MODEL`` (its ``args.name is None`` branch)."""
    return "-".join([datetime(2026, 12, 1, 20, 23, 22).strftime("%Y_%m_%d-%H_%M_%S"),
                     f"model_{model.replace('/', '-')}", f"lr_{lr}", "b_64", "j_4", "p_amp"])


def write_epoch(path: Path, sd: dict[str, torch.Tensor], name: str, *, ddp: bool = True) -> Path:
    """A checkpoint as open_clip_train/main.py saves it (under DDP the model's keys gain ``module.``)."""
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 1, "name": name, "state_dict": {("module." if ddp else "") + k: v for k, v in sd.items()},
                "optimizer": opt.state_dict()}, path)
    return path


def write_hub_folder(folder: Path, sd: dict[str, torch.Tensor], pp: dict | None = None, *,
                     model_cfg: dict | None = None, safetensors: bool = True) -> Path:
    """A folder as open_clip's push_to_hf_hub.save_for_hf writes it (config via open_clip's own function)."""
    pp = HUB_PP if pp is None else pp
    kw = {"image_mean": pp.get("mean"), "image_std": pp.get("std"), "image_interpolation": pp.get("interpolation"),
          "image_resize_mode": pp.get("resize_mode")}
    model, _, _ = open_clip.create_model_and_transforms(TINY, **{k: v for k, v in kw.items() if v is not None})
    folder.mkdir(parents=True, exist_ok=True)
    save_config_for_hf(model, folder / CONFIG_FILE, model_config=model_cfg or open_clip.get_model_config(TINY))
    if safetensors:
        save_file(sd, str(folder / "open_clip_model.safetensors"))
    else:
        torch.save(sd, folder / "open_clip_pytorch_model.bin")
    return folder


def same_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> bool:
    have = model.state_dict()
    return set(have) == set(sd) and all(torch.equal(have[k].cpu(), sd[k]) for k in sd)


# ---- open_clip_train's epoch_N.pt ---------------------------------------------------------------


def test_open_clip_train_checkpoint_with_and_without_model(weights, tmp_path: Path) -> None:
    name = run_name(TINY)
    ckpt = write_epoch(tmp_path / "logs" / name / "checkpoints" / "epoch_1.pt", weights, name)
    for model in (None, TINY):  # the model recovered from the run name, or --model
        loaded = load_model(ckpt, model)
        assert (loaded.name, loaded.form, loaded.run_name) == (TINY, "open_clip_train", name)
        assert same_weights(loaded.model, weights)  # module. prefixes gone, nothing random
        assert loaded.checkpoint["epoch"] == 1 and "optimizer" not in loaded.checkpoint
    # --model wins over the run name: another model is tried (and its shapes do not fit)
    with pytest.raises(ModelError, match=rf"does not fit model ego-small-vit \(its run name is {name}\)"):
        load_model(ckpt, "ego-small-vit")
    # a single-process open_clip_train run saves without module. prefixes
    plain = write_epoch(tmp_path / "plain" / "epoch_2.pt", weights, name, ddp=False)
    assert same_weights(load_model(plain).model, weights)


def test_run_name_without_a_model_asks_for_model(weights, tmp_path: Path) -> None:
    for name in ("my-experiment", run_name("hf-hub:org/some-model")):  # --name runs; an hf-hub model's run
        ckpt = write_epoch(tmp_path / f"{len(name)}.pt", weights, name)
        with pytest.raises(ModelError) as e:
            load_model(ckpt)
        said = " ".join(str(e.value).split())
        assert f"'{name}'" in said and "run name" in said and "--model" in said
        assert load_model(ckpt, TINY).name == TINY  # ... and --model is the way out


def test_model_from_run_name() -> None:
    assert model_from_run_name(run_name("ViT-B-32")) == "ViT-B-32"
    assert model_from_run_name(run_name("ViT-B-32-quickgelu", lr=0.0005)) == "ViT-B-32-quickgelu"  # longest known
    assert model_from_run_name(run_name(TINY)) == TINY
    assert model_from_run_name(run_name("hf-hub:laion/CLIP-ViT-B-32")) is None
    assert model_from_run_name("2026_12_01-20_23_22-lr_0.1") is None


def test_egoindex_checkpoint_keeps_its_rules(weights, tmp_path: Path) -> None:
    model = create(TINY).model
    model.load_state_dict(weights)
    ckpt = tmp_path / "latest.pt"
    save_checkpoint(ckpt, make_checkpoint(model, TINY, epoch=1, step=3, config={}))
    loaded = load_model(ckpt)
    assert (loaded.name, loaded.form, loaded.run_name) == (TINY, "egoindex", None)
    with pytest.raises(ModelError, match="was trained as ego-tiny-vit, not ego-small-vit"):
        load_model(ckpt, "ego-small-vit")  # a real model name is never overridden


# ---- bare state dicts ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".bin", ".pt"])
def test_bare_state_dict_needs_model(weights, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(weights, str(path))
    else:
        torch.save(weights, path)
    loaded = load_model(path, TINY)
    assert (loaded.name, loaded.form) == (TINY, "state_dict") and same_weights(loaded.model, weights)
    with pytest.raises(ModelError, match=r"does not record its model name; pass the open_clip name with --model"):
        load_model(path)


def test_corrupt_safetensors_is_a_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelError, match="cannot read .*bad.safetensors as a safetensors file"):
        load_model(bad, TINY)


# ---- Hugging Face hub folders -------------------------------------------------------------------


def test_hub_folder_loads_with_its_own_preprocessing(weights, tmp_path: Path) -> None:
    folder = write_hub_folder(tmp_path / "hub", weights)
    doc = json.loads((folder / CONFIG_FILE).read_text())
    assert set(doc) == {"model_cfg", "preprocess_cfg"} and doc["preprocess_cfg"]["interpolation"] == "bilinear"
    # the folder, or the weights file inside it (where open_clip alone would use its defaults: issue #1068)
    for given in (folder, folder / "open_clip_model.safetensors"):
        loaded = load_model(given)
        assert (loaded.name, loaded.form) == (TINY, "hf_folder") and same_weights(loaded.model, weights)
        pp = Embedder(loaded, device="cpu").pp  # what every frame and query goes through
        assert pp == Preprocessing(64, HUB_PP["mean"], HUB_PP["std"], "bilinear", "shortest")
        normalize = [t for t in loaded.preprocess.transforms if type(t).__name__ == "Normalize"][0]
        assert tuple(normalize.mean) == HUB_PP["mean"] and tuple(normalize.std) == HUB_PP["std"]
    assert load_model(folder, TINY).name == TINY  # the model it describes may be named
    with pytest.raises(ModelError, match="describes model ego-tiny-vit, not ego-small-vit"):
        load_model(folder, "ego-small-vit")
    # what egoindex refuses to do: plain open_clip on the weights file takes its defaults
    _, _, pre = open_clip.create_model_and_transforms(TINY, pretrained=str(folder / "open_clip_model.safetensors"))
    assert tuple([t for t in pre.transforms if type(t).__name__ == "Normalize"][0].mean) != HUB_PP["mean"]


def test_hub_folder_with_bin_weights_and_an_unnamed_architecture(weights, tmp_path: Path) -> None:
    folder = write_hub_folder(tmp_path / "bin", weights, safetensors=False)
    assert load_model(folder).name == TINY
    cfg = open_clip.get_model_config(TINY)
    cfg["text_cfg"]["layers"] = 2  # no registered config has this architecture
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / CONFIG_FILE).write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{odd}", load_weights=False)
    save_file(model.state_dict(), str(odd / "open_clip_model.safetensors"))
    loaded = load_model(odd)
    assert loaded.name == f"local-dir:{odd.resolve()}" and same_weights(loaded.model, model.state_dict())
    assert load_model(odd, loaded.name).name == loaded.name  # what a store passes back at query time
    with pytest.raises(ModelError, match="describes an architecture open_clip has no name for"):
        load_model(odd, TINY)


def test_incomplete_folders_and_uncached_hub_ids_say_how_to_fix(weights, tmp_path: Path) -> None:
    only_config = tmp_path / "only-config"
    write_hub_folder(only_config, weights)
    (only_config / "open_clip_model.safetensors").unlink()
    with pytest.raises(ModelError, match=r"has open_clip_config.json but no weights file .*hf download ORG/REPO"):
        load_model(only_config)
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    save_file(weights, str(no_config / "open_clip_model.safetensors"))
    with pytest.raises(ModelError, match="folder without open_clip_config.json"):
        load_model(no_config)
    with pytest.raises(ModelError, match=r"not in the local Hugging Face cache .* never downloads.*hf download nobody/"
                                         r"no-such-model --local-dir no-such-model"):
        load_model("hf-hub:nobody/no-such-model")
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_model(tmp_path / "missing.pt")


def test_cached_hf_hub_id_loads_offline(weights, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    # the cache as huggingface_hub lays it out: refs/main -> snapshots/<commit>/<files>
    repo = tmp_path / "cache" / "models--someorg--tiny-clip"
    commit = "0123456789abcdef0123456789abcdef01234567"
    write_hub_folder(repo / "snapshots" / commit, weights)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    loaded = load_model("hf-hub:someorg/tiny-clip")
    assert (loaded.name, loaded.form, loaded.path) == (TINY, "hf_folder", repo / "snapshots" / commit)
    assert Preprocessing.of(loaded.model).mean == HUB_PP["mean"] and same_weights(loaded.model, weights)


def test_preprocessing_the_embedder_cannot_reproduce_is_refused(weights, tmp_path: Path) -> None:
    folder = write_hub_folder(tmp_path / "squash", weights, {**HUB_PP, "resize_mode": "squash"})
    with pytest.raises(ModelError, match=r"resize_mode='squash'.*refuses to approximate"):
        load_model(folder)


def test_init_from_a_hub_folder_trains_and_records_its_preprocessing(weights, tmp_path: Path) -> None:
    folder = write_hub_folder(tmp_path / "hub", weights)
    created = create(TINY, init=folder)  # train --init FOLDER
    assert same_weights(created.model, weights)
    normalize = [t for t in created.preprocess_train.transforms if type(t).__name__ == "Normalize"][0]
    assert tuple(normalize.mean) == HUB_PP["mean"]
    ckpt = tmp_path / "latest.pt"
    save_checkpoint(ckpt, make_checkpoint(created.model, TINY, epoch=1, step=1, config={}))
    again = load_model(ckpt)  # the trained checkpoint keeps the preprocessing it was trained with
    assert again.form == "egoindex" and Preprocessing.of(again.model).interpolation == "bilinear"
    assert Preprocessing.of(again.model).std == HUB_PP["std"]
    with pytest.raises(ModelError, match="describes model ego-tiny-vit, not ViT-B-32; pass the model it describes"):
        create("ViT-B-32", init=folder)
    name = run_name(TINY)  # train --init epoch_N.pt: --model decides, the shapes must fit
    assert same_weights(create(TINY, init=write_epoch(tmp_path / "e.pt", weights, name)).model, weights)


def test_sha256_of_a_folder_covers_its_config(weights, tmp_path: Path) -> None:
    folder = write_hub_folder(tmp_path / "hub", weights)
    before = checkpoint_sha256(folder)
    assert locate(folder).weights == folder / "open_clip_model.safetensors"
    assert checkpoint_sha256(folder / "open_clip_model.safetensors") == before  # its weights file: the same model
    doc = json.loads((folder / CONFIG_FILE).read_text())
    doc["preprocess_cfg"]["mean"] = [0.1, 0.1, 0.1]
    (folder / CONFIG_FILE).write_text(json.dumps(doc))
    assert checkpoint_sha256(folder) != before  # another preprocessing is another checkpoint
    assert resolve_checkpoint(folder).contents.preprocess_cfg["mean"] == [0.1, 0.1, 0.1]


# ---- the store's record -------------------------------------------------------------------------


def test_store_meta_reads_older_files_and_round_trips_the_new_fields(tmp_path: Path) -> None:
    old = {"format_version": 1, "model": TINY, "checkpoint": "/x/latest.pt", "checkpoint_sha256": "ab" * 32,
           "embed_dim": 128, "preprocessing": {"image_size": 64}}
    (tmp_path / "egoindex.json").write_text(json.dumps(old))
    meta = StoreMeta.read(tmp_path)
    assert (meta.checkpoint_form, meta.checkpoint_run_name) == ("", None)
    new = StoreMeta(**{**{k: v for k, v in old.items() if k != "format_version"}, "checkpoint_form": "open_clip_train",
                       "checkpoint_run_name": run_name(TINY)})
    new.write(tmp_path / "new")
    assert StoreMeta.read(tmp_path / "new") == new
