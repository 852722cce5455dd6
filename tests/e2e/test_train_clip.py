"""Clip-level pretraining end to end: the clip shards of a real ingest, a real clip model on open_clip
towers, EgoNCE with scene-aware negatives, EgoMCQ during training, checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from egoindex.metrics.egomcq import load_egomcq
from egoindex.model.clip_video import KIND, load_clip_video
from egoindex.model.openclip import ModelError, load_model, read_checkpoint
from egoindex.train.log import read_jsonl
from egoindex.train.loop import launch
from tests.support import torch_threads

ARGS = ("--model", "ego-tiny-rn-video", "--loss", "egonce", "--batch-size", "4", "--lr", "1e-3", "--warmup", "1",
        "--workers", "0", "--threads", "1", "--no-progress", "--report-to", "none", "--log-every", "1",
        "--val-egomcq", "generate")


@pytest.mark.slow
def test_clip_model_pretrains_with_egonce_and_an_egomcq_curve(demo_shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "clip"
    with torch_threads(1):
        assert launch([str(demo_shards), str(run_dir), *ARGS, "--epochs", "2"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    plan = config["plan"]
    assert plan["train_samples_source"] == "clips/sizes.json"
    sizes = json.loads((demo_shards / "clips" / "sizes.json").read_text())
    assert plan["train_samples"] == sum(n for name, n in sizes.items() if name.startswith("clips-train-"))

    ckpt = read_checkpoint(run_dir / "latest.pt")
    assert ckpt["kind"] == KIND and ckpt["frame_model"] == "ego-tiny-rn" and ckpt["video_config"]["num_frames"] == 4
    loaded = load_clip_video(run_dir / "latest.pt")
    assert float(loaded.model.temporal.proj.weight.detach().abs().sum()) > 0  # training moved it off the frame mean
    with pytest.raises(ModelError, match="clip"):
        load_model(run_dir / "latest.pt")

    metrics = read_jsonl(run_dir / "metrics.jsonl")
    train = [r for r in metrics if r["kind"] == "train"]
    assert len(train) == plan["total_steps"]
    # scene-aware negatives: most anchors got a clip of their own video at another time
    assert train[-1]["scene_negatives_same_video"] > 0.5
    vals = [r for r in metrics if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [plan["steps_per_epoch"], 2 * plan["steps_per_epoch"]]
    for v in vals:  # clip <-> text retrieval on the val clips, and the EgoMCQ curve
        assert v["val_frames"] == v["val_utterances"] > 0  # one clip per val moment
        assert 0 <= v["egomcq_intra_acc"] <= 100 and v["egomcq_n_intra"] > 0
    questions = load_egomcq(run_dir / "egomcq_val.json")
    assert len(questions) == vals[0]["egomcq_n_intra"] + vals[0]["egomcq_n_inter"]
    assert (run_dir / "curves.png").stat().st_size > 10_000

    # resume: a longer run continues from the checkpoint's step with the same plan
    with torch_threads(1):
        assert launch([str(demo_shards), str(run_dir), *ARGS, "--epochs", "3", "--resume"]) == 0
    steps = [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == list(range(1, 3 * plan["steps_per_epoch"] + 1))
    assert read_checkpoint(run_dir / "latest.pt")["step"] == 3 * plan["steps_per_epoch"]


@pytest.mark.slow
def test_clip_model_started_from_a_frame_checkpoint_is_the_frame_model(demo_checkpoint: Path, demo_shards: Path,
                                                                      tmp_path: Path) -> None:
    """--init a frame checkpoint: at step 0 (--epochs 0 is not a run; compare the created model)
    the clip vector is the normalised frame mean of the frame model it came from."""
    from egoindex.model.clip_video import create_clip_video

    frame = load_model(demo_checkpoint)
    created = create_clip_video("ego-tiny-vit-video", init=demo_checkpoint, num_frames=4)
    model = created.model.eval()
    video = torch.randn(2, 4, 3, *frame.model.visual.image_size)
    with torch.no_grad():
        want = torch.nn.functional.normalize(
            torch.nn.functional.normalize(frame.model.encode_image(video.flatten(0, 1)), dim=-1).view(2, 4, -1).mean(1),
            dim=-1)
        got = model.encode_video(video, normalize=True)
    assert torch.allclose(got, want, atol=1e-5)


def test_clip_model_on_a_folder_without_clip_shards_says_what_to_do(tmp_path: Path, capsys) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "train-0000-00000.tar").write_bytes(b"")
    with torch_threads(1):
        code = launch([str(shards), str(tmp_path / "run"), "--model", "ego-tiny-rn-video", "--epochs", "1",
                       "--no-progress", "--report-to", "none", "--workers", "0"])
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no clip shards" in err and "ingest into a new SHARDS_DIR" in err


@pytest.mark.slow
def test_time_order_loss_and_spatial_adapter_train_with_accumulation_and_a_locked_tower(demo_checkpoint: Path,
                                                                                        demo_shards: Path,
                                                                                        tmp_path: Path) -> None:
    """--reverse-negatives logs the time-order accuracy at every step (also over 2 micro-batches);
    --spatial-grid adds a trainable adapter even under --lock-image, whose tower stays the frame
    checkpoint's, as the text tower under --lock-text; the run's checkpoint reloads."""
    run_dir = tmp_path / "order"
    args = [a for a in ARGS if a not in ("--val-egomcq", "generate")]
    args[args.index("ego-tiny-rn-video")] = "ego-tiny-vit-video"
    with torch_threads(1):
        assert launch([str(demo_shards), str(run_dir), *args, "--epochs", "1", "--init", str(demo_checkpoint),
                       "--reverse-negatives", "1", "--spatial-grid", "2", "--accum-freq", "2", "--lock-image",
                       "--lock-text"]) == 0
    train = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert train and all(0.0 <= r["time_order_acc"] <= 1.0 for r in train)
    ckpt = read_checkpoint(run_dir / "latest.pt")
    assert ckpt["video_config"]["spatial_grid"] == 2
    loaded = load_clip_video(run_dir / "latest.pt")
    assert float(loaded.model.clip.visual.spatial.proj.weight.detach().abs().sum()) > 0  # the adapter learned
    frame = load_model(demo_checkpoint).model.visual.state_dict()
    tower = {k: v for k, v in loaded.model.clip.visual.state_dict().items() if not k.startswith("spatial.")}
    assert tower.keys() == frame.keys() and all(torch.equal(tower[k], frame[k]) for k in frame)  # locked
    text = load_model(demo_checkpoint).model.transformer.state_dict()
    assert all(torch.equal(loaded.model.clip.transformer.state_dict()[k], v) for k, v in text.items())
