"""The clip-level video model: starts as the frame model, learns frame order, round-trips its checkpoint."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from egoindex.errors import ModelError  # noqa: E402
from tests.support import moving_square  # noqa: E402


@pytest.fixture(scope="module")
def frame_ckpt(tmp_path_factory: pytest.TempPathFactory):
    """A real egoindex frame checkpoint of ego-tiny-rn (random weights, fixed seed)."""
    from egoindex.model import openclip

    torch.manual_seed(0)
    created = openclip.create("ego-tiny-rn")
    path = tmp_path_factory.mktemp("frame") / "latest.pt"
    openclip.save_checkpoint(path, openclip.make_checkpoint(created.model, "ego-tiny-rn", epoch=1, step=1, config={}))
    return path


def test_starts_as_the_frame_model(frame_ckpt) -> None:
    from egoindex.model.clip_video import create_clip_video

    m = create_clip_video("ego-tiny-rn-video", init=frame_ckpt).model.eval()
    video = moving_square(3, seed=1)
    with torch.no_grad():
        frames = m.encode_frames(video)
        clip = m.encode_video(video, normalize=True)
    mean = torch.nn.functional.normalize(frames.mean(1), dim=-1)
    assert (clip - mean).abs().max().item() < 1e-5
    # the towers are the checkpoint's (not random): frame vectors equal the frame model's own
    from egoindex.model.openclip import load_model

    frame = load_model(frame_ckpt).model
    with torch.no_grad():
        own = torch.nn.functional.normalize(frame.encode_image(video.flatten(0, 1)), dim=-1).view_as(frames)
    assert (own - frames).abs().max().item() < 1e-5


def test_forward_is_open_clip_shaped_and_loss_applies() -> None:
    import open_clip

    from egoindex.model.clip_video import create_clip_video

    c = create_clip_video("ego-tiny-rn", num_frames=4, temporal_layers=2, temporal_heads=2)
    assert c.name == "ego-tiny-rn-video" and len(c.model.temporal.layers) == 2
    text = c.tokenizer(["a cup falls down", "a cup rises up"])
    out = c.model(moving_square(2, seed=2), text)
    assert set(out) >= {"image_features", "text_features", "logit_scale"}
    assert out["image_features"].shape == (2, 128) and out["text_features"].shape == (2, 128)
    loss = open_clip.ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"])
    loss.backward()
    # the zero-initialised output projection gets a gradient: training can leave the frame mean
    assert c.model.temporal.proj.weight.grad.abs().sum() > 0
    with pytest.raises(ModelError, match="1 <= T <= 4"):
        c.model.encode_video(torch.zeros(1, 5, 3, 64, 64))
    with pytest.raises(ModelError, match="does not divide"):
        create_clip_video("ego-tiny-rn", temporal_heads=3)


def test_grad_checkpointing_and_bf16_autocast() -> None:
    from egoindex.model.clip_video import create_clip_video

    torch.manual_seed(0)
    m = create_clip_video("ego-tiny-rn-video").model
    with torch.no_grad():
        m.temporal.proj.weight.normal_(0, 0.1)  # leave the identity so the temporal path matters
    video = moving_square(2, seed=3)
    plain = m.encode_video(video, normalize=True).sum()
    plain.backward()
    g_plain = m.temporal.pos.grad.clone()
    m.zero_grad()
    m.set_grad_checkpointing(True)
    ckpt = m.encode_video(video, normalize=True).sum()
    ckpt.backward()
    assert torch.allclose(plain, ckpt, atol=1e-6) and torch.allclose(g_plain, m.temporal.pos.grad, atol=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = m(video)["image_features"]
    assert feats.dtype == torch.bfloat16 and torch.isfinite(feats.float()).all()


def moving_feature(n: int, seed: int, dim: int = 128, frames: int = 4) -> torch.Tensor:
    """(n, T, dim) unit frame vectors: a per-clip random background plus a "where the object is"
    direction that moves one location to the right every frame (8 locations, random start)."""
    g = torch.Generator().manual_seed(seed)
    places = torch.nn.functional.normalize(torch.randn(8, dim, generator=torch.Generator().manual_seed(0)), dim=-1)
    background = torch.nn.functional.normalize(torch.randn(n, 1, dim, generator=g), dim=-1)
    start = torch.randint(0, 8 - frames + 1, (n,), generator=g)
    where = places[start[:, None] + torch.arange(frames)]
    return torch.nn.functional.normalize(background + where, dim=-1)


def test_frame_order_is_learned_where_the_frame_mean_cannot(frame_ckpt) -> None:
    """Label = direction (moving right vs the reversed clip). The frame mean of a clip and of its
    reversal are the same by construction; the temporal head, trained a few dozen steps against
    the two text prompts with the towers frozen, tells them apart on unseen clips.

    The sequences are frame embeddings (what the temporal head sees), not pixels: a frame tower
    with random weights maps every 64 px frame to nearly the same vector (cos > 0.9999), so pixel
    clips would test the untrained tower, not the temporal head."""
    from egoindex.model.clip_video import create_clip_video

    torch.manual_seed(0)
    c = create_clip_video("ego-tiny-rn-video", init=frame_ckpt)
    m = c.model.eval()
    for p in m.clip.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        text = m.encode_text(c.tokenizer(["a square moving left", "a square moving right"]), normalize=True)

    def frames_and_labels(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        right = moving_feature(n, seed)
        return torch.cat([right, right.flip(1)]), torch.cat([torch.ones(n), torch.zeros(n)]).long()
    train_x, train_y = frames_and_labels(64, seed=10)
    test_x, test_y = frames_and_labels(16, seed=11)

    # the frame mean cannot: a permutation-exact mean (sorted per coordinate) is bit-identical
    def exact_mean(x: torch.Tensor) -> torch.Tensor:
        return x.sort(dim=1).values.sum(dim=1)
    assert torch.equal(exact_mean(test_x[:16]), exact_mean(test_x[:16].flip(1)))
    with torch.no_grad():  # ... and so is the clip model at initialisation (it is the frame model)
        start = m.pool(test_x, normalize=True)
    assert (start[:16] - start[16:]).abs().max().item() < 1e-5

    m.temporal.train()
    opt = torch.optim.AdamW(m.temporal.parameters(), lr=3e-3, weight_decay=0.0)
    scale = m.logit_scale.exp().detach()
    for _ in range(40):
        logits = scale * m.pool(train_x, normalize=True) @ text.T
        loss = torch.nn.functional.cross_entropy(logits, train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.temporal.eval()
    with torch.no_grad():
        pred = (m.pool(test_x, normalize=True) @ text.T).argmax(1)
        after = m.pool(test_x, normalize=True)
    assert (pred == test_y).float().mean().item() == 1.0
    assert (after[:16] - after[16:]).norm(dim=1).min().item() > 0.05


def test_checkpoint_round_trip_and_loader_refusals(frame_ckpt, tmp_path) -> None:
    from egoindex.model import openclip
    from egoindex.model.clip_video import KIND, create_clip_video, load_clip_video, make_clip_video_checkpoint

    c = create_clip_video("ego-tiny-rn-video", init=frame_ckpt)
    with torch.no_grad():
        c.model.temporal.proj.weight.normal_(0, 0.1)
    path = tmp_path / "clip.pt"
    openclip.save_checkpoint(path, make_clip_video_checkpoint(c.model, c.name, c.frame_model, epoch=2, step=7))
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == KIND and raw["frame_model"] == "ego-tiny-rn"
    assert raw["video_config"] == {"num_frames": 4, "temporal_layers": 1, "temporal_heads": 4, "mlp_ratio": 4.0,
                                   "dropout": 0.0, "spatial_grid": 0}

    loaded = load_clip_video(path)
    assert loaded.name == "ego-tiny-rn-video" and loaded.checkpoint["step"] == 7
    video = moving_square(2, seed=4)
    c.model.eval()
    with torch.no_grad():
        assert torch.allclose(c.model.encode_video(video), loaded.model.encode_video(video), atol=1e-6)
    # fine-tuning from a clip checkpoint loads everything; a different temporal shape is refused
    again = create_clip_video("ego-tiny-rn-video", init=path).model.eval()
    with torch.no_grad():
        assert torch.allclose(again.encode_video(video), loaded.model.encode_video(video), atol=1e-6)
    with pytest.raises(ModelError, match="video config"):
        create_clip_video("ego-tiny-rn-video", init=path, temporal_layers=2)

    with pytest.raises(ModelError, match="load_clip_video"):
        openclip.load_model(path)
    with pytest.raises(ModelError, match="load_clip_video"):
        openclip.create("ego-tiny-rn", init=path)
    with pytest.raises(ModelError, match="frame model: load it with egoindex.model.openclip.load_model"):
        load_clip_video(frame_ckpt)
