"""Video backbones behind one interface (egoindex.model.backbones): small configs build and train on a
CPU, rebuild from their record, load local weights, and refuse hub ids with a way to a local copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from egoindex.errors import ModelError
from egoindex.model.backbones import CPU_BACKBONES, create_classifier, dummy_clip, get_spec, rebuild
from egoindex.model.saliency import saliency

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"num_frames": 4, "image_size": 32}


@pytest.mark.parametrize("name", [n for n in CPU_BACKBONES])
def test_cpu_backbones_classify_learn_and_rebuild(name: str) -> None:
    torch.manual_seed(0)
    m = create_classifier(name, 3, **({} if name == "swin3d-tiny" else TINY))
    x = dummy_clip(m, 2)
    assert x.shape == (2, m.num_frames, 3, m.image_size, m.image_size)
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is not None for p in m.head.parameters())
    assert sum(float(p.grad.abs().sum()) for p in m.encoder.parameters() if p.grad is not None) > 0
    again = rebuild(m.info, 3)  # the checkpoint's record alone makes the same network
    again.load_state_dict(m.state_dict())
    m.eval(), again.eval()
    with torch.no_grad():
        assert torch.equal(m(x), again(x))
    maps, method = saliency(m, x[:1], target=1)
    assert maps.shape == (m.num_frames, m.image_size, m.image_size) and 0.0 <= maps.min() <= maps.max() <= 1.0
    assert method == {"vit": "attention rollout", "cnn": "Grad-CAM", "other": "input gradient"}[m.kind]


def test_hub_ids_offline_say_how_to_use_a_local_copy() -> None:
    with pytest.raises(ModelError) as e:
        create_classifier("videomae-base", 4, weights="MCG-NJU/videomae-base-finetuned-kinetics")
    msg = str(e.value)
    assert "never downloads" in msg and "hf download MCG-NJU/videomae-base-finetuned-kinetics --local-dir" in msg
    assert "--weights ./videomae-base-finetuned-kinetics" in msg
    with pytest.raises(ModelError, match="not in the local Hugging Face cache"):
        create_classifier("timesformer-base", 4, weights="hf-hub:facebook/timesformer-base-finetuned-k400")
    with pytest.raises(ModelError, match=r"would download https://download\.pytorch\.org/.*r3d_18"):
        create_classifier("r3d_18", 4, weights="R3D_18_Weights.KINETICS400_V1")


def test_unknown_backbone_lists_the_registered_ones() -> None:
    with pytest.raises(ModelError, match="videomae-tiny.*clip-frames:OPEN_CLIP_NAME"):
        get_spec("i3d")


def test_a_local_hf_folder_is_the_architecture_and_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = create_classifier("videomae-tiny", 2, **TINY)
    src.encoder.net.save_pretrained(tmp_path / "vmae")  # config.json + model.safetensors, as the hub ships them
    got = create_classifier("videomae-base", 5, weights=tmp_path / "vmae")  # -base: the folder's config wins
    assert (got.num_frames, got.image_size) == (4, 32) and got.info["weights"] == str((tmp_path / "vmae").resolve())
    x = dummy_clip(got, 1)
    src.eval(), got.eval()
    with torch.no_grad():
        assert torch.allclose(src.features(x), got.features(x), atol=1e-6)
    with pytest.raises(ModelError, match="num_frames=4"):
        create_classifier("videomae-base", 5, weights=tmp_path / "vmae", num_frames=8)
    with pytest.raises(ModelError, match="'videomae' model, not 'timesformer'"):
        create_classifier("timesformer-base", 5, weights=tmp_path / "vmae")


def test_a_torchvision_state_dict_loads_without_its_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = create_classifier("r3d-tiny", 400, **TINY)  # a "Kinetics" head of 400 classes
    sd = {k.replace("encoder.net.", ""): v for k, v in src.state_dict().items() if k.startswith("encoder.")}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(400, 128), torch.zeros(400)
    torch.save(sd, tmp_path / "r3d.pth")
    got = create_classifier("r3d-tiny", 3, weights=tmp_path / "r3d.pth", **TINY)
    assert torch.equal(got.encoder.net.layer4[0].conv1[0].weight, src.encoder.net.layer4[0].conv1[0].weight)
    sd["layer1.0.conv1.0.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match=r"layer1\.0\.conv1\.0\.weight: file \(1,\)"):
        create_classifier("r3d-tiny", 3, weights=tmp_path / "bad.pth")


def test_open_clip_towers_are_backbones() -> None:
    m = create_classifier("clip-frames:ego-tiny-rn", 3, num_frames=2)
    assert m.image_size == 64 and m.info["mean"] and m(dummy_clip(m, 1)).shape == (1, 3)
    v = create_classifier("clip-video:ego-tiny-rn-video", 3, num_frames=2)
    assert v(dummy_clip(v, 1)).shape == (1, 3)
    with pytest.raises(ModelError, match="takes 64 px"):
        create_classifier("clip-frames:ego-tiny-rn", 3, image_size=32)
