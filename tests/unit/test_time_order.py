"""Frame order for clip models: the time-order loss (``train --reverse-negatives``) and the spatial
adapter that lets frame vectors say where things are (``--spatial-grid``)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from egoindex.errors import ModelError, TrainError  # noqa: E402
from tests.support import moving_square  # noqa: E402


def test_time_order_loss_on_hand_made_rows() -> None:
    from egoindex.train.loss import time_order_loss

    text = F.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    fwd = F.normalize(torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0]]), dim=-1)
    rev = F.normalize(torch.tensor([[0.1, 0.9, 0.0], [0.9, 0.1, 0.0]]), dim=-1)
    scale = torch.tensor(10.0)
    good, acc = time_order_loss(text, fwd, rev, scale)
    bad, acc_bad = time_order_loss(text, rev, fwd, scale)
    tie, acc_tie = time_order_loss(text, fwd, fwd, scale)
    assert acc.item() == 1.0 and acc_bad.item() == 0.0 and acc_tie.item() == 0.0  # a tie is not a win
    assert good.item() < math.log(2) < bad.item()
    assert tie.item() == pytest.approx(math.log(2), abs=1e-6)  # what an order-blind model (the frame mean) scores
    # the formula: -log softmax([s_fwd, s_rev])[0], rows averaged
    s_f, s_r = (text * fwd).sum(-1), (text * rev).sum(-1)
    expect = -torch.log_softmax(scale * torch.stack([s_f, s_r], 1), 1)[:, 0].mean()
    assert good.item() == pytest.approx(expect.item(), rel=1e-6)


@pytest.mark.parametrize("frame_model", ["ego-tiny-rn", "ego-tiny-vit"])
def test_spatial_adapter_starts_at_zero_and_reaches_every_encode_image(frame_model: str) -> None:
    from egoindex.model.clip_video import create_clip_video

    torch.manual_seed(0)
    m = create_clip_video(f"{frame_model}-video", spatial_grid=3).model.eval()
    bare = create_clip_video(f"{frame_model}-video").model.eval()
    bare.load_state_dict({k: v for k, v in m.state_dict().items() if ".spatial." not in k})
    video = moving_square(2, seed=1)
    with torch.no_grad():
        assert torch.equal(m.encode_frames(video), bare.encode_frames(video))  # W = 0: the frame model's vectors
        torch.nn.init.normal_(m.clip.visual.spatial.proj.weight, std=0.05)
        moved = m.encode_frames(video)
        # the hook is on the tower, so the plain open_clip call (what build and Embedder use) runs it too
        direct = F.normalize(m.clip.encode_image(video.flatten(0, 1)), dim=-1).view_as(moved)
    assert (moved - bare.encode_frames(video)).abs().max().item() > 1e-3
    assert torch.allclose(moved, direct, atol=1e-6)
    assert sorted(k for k in m.state_dict() if ".spatial." in k)[0].startswith("clip.visual.spatial.")


def test_reversed_features_and_order_learned_on_held_out_clips() -> None:
    """Towers frozen with random weights (which map every 64 px frame to nearly one vector): the
    spatial adapter and the temporal head, trained 60 steps with the time-order loss against fixed
    captions, prefer the clip to its reversal on unseen clips; at the start they tie exactly."""
    from egoindex.model.clip_video import create_clip_video
    from egoindex.train.loss import time_order_loss

    torch.manual_seed(0)
    c = create_clip_video("ego-tiny-rn-video", spatial_grid=3)
    m = c.model
    for p in m.clip.parameters():
        p.requires_grad_(False)
    trainable = list(m.temporal.parameters()) + list(m.clip.visual.spatial.parameters())
    for p in trainable:
        p.requires_grad_(True)
    m.eval()
    with torch.no_grad():
        text = m.encode_text(c.tokenizer(["a square moving right"] * 32), normalize=True)
    held_out = moving_square(16, seed=99)
    with torch.no_grad():
        out = m(held_out, c.tokenizer(["a square moving right"] * 16), reverse=True)
        frames = m.encode_frames(held_out)
    assert torch.allclose(out["reversed_features"], m.pool(frames.flip(1), normalize=True), atol=1e-6)
    assert torch.allclose(out["reversed_features"], out["image_features"], atol=1e-5)  # zero head: a tie

    opt = torch.optim.AdamW(trainable, lr=3e-3, weight_decay=0.0)
    for step in range(60):
        video = moving_square(32, seed=step)
        frames = m.encode_frames(video)
        loss, _ = time_order_loss(text, m.pool(frames, normalize=True), m.pool(frames.flip(1), normalize=True),
                                  torch.tensor(20.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = m(held_out, c.tokenizer(["a square moving right"] * 16), reverse=True)
        _, acc = time_order_loss(out["text_features"], out["image_features"], out["reversed_features"],
                                 torch.tensor(1.0))
    assert acc.item() == 1.0


def test_old_clip_checkpoints_have_no_adapter_and_locked_towers_reload(tmp_path) -> None:
    from egoindex.model import openclip
    from egoindex.model.clip_video import VideoConfig, create_clip_video, load_clip_video, make_clip_video_checkpoint

    old = {"num_frames": 4, "temporal_layers": 1, "temporal_heads": 4, "mlp_ratio": 4.0, "dropout": 0.0}
    assert VideoConfig.from_dict(old, "x").spatial_grid == 0  # egoindex 0.4.0 wrote no spatial_grid
    with pytest.raises(ModelError, match="spatial_grid"):
        VideoConfig(spatial_grid=-1).check(128)
    # --lock-image swaps BatchNorm for frozen BN (no step counters): the checkpoint still loads
    c = create_clip_video("ego-tiny-rn-video", spatial_grid=3)
    c.model.clip.lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
    path = tmp_path / "locked.pt"
    openclip.save_checkpoint(path, make_clip_video_checkpoint(c.model, c.name, c.frame_model, epoch=1, step=1))
    loaded = load_clip_video(path)
    assert loaded.model.cfg.spatial_grid == 3
    video = moving_square(1, seed=3)
    c.model.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.model.encode_video(video), c.model.encode_video(video), atol=1e-5)


def test_reverse_negatives_need_a_clip_model(tmp_path) -> None:
    from egoindex.train.config import TrainConfig
    from egoindex.train.loop import validate_config

    with pytest.raises(TrainError, match="needs a clip model"):
        validate_config(TrainConfig(shards=str(tmp_path), run_dir=str(tmp_path / "run"), model="ego-tiny-rn",
                                    reverse_negatives=1.0))
    with pytest.raises(TrainError, match="0 <= W"):
        validate_config(TrainConfig(shards=str(tmp_path), run_dir=str(tmp_path / "run"), model="ego-tiny-rn-video",
                                    reverse_negatives=-1.0))
