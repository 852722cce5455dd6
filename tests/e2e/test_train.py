"""Training stage: real shards, real open_clip models, real torchrun/gloo processes (no mocks).

The two end-to-end runs (2-process DDP, kill -9 + resume) use the tiny ``ego-tiny-vit`` config
on the session's demo shards; every process gets one CPU thread so two ranks share two cores.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image

from egoindex.metrics.retrieval import chance_hit, retrieval_at_k
from egoindex.model.openclip import ModelError, create, load_model, make_checkpoint, read_checkpoint, save_checkpoint
from egoindex.dataset.shards import iter_samples, list_shards
from egoindex.train.loop import cosine_lr, launch
from egoindex.train.config import parse, torchrun_command
from egoindex.train.data import ShardStream, count_train_samples, train_loader
from egoindex.train.eval import retrieval_metrics
from egoindex.train.log import read_jsonl
from egoindex.train.loss import DedupClipLoss

TINY = "ego-tiny-vit"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}


def _train_cmd(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "egoindex.cli.main", "train", str(shards), str(run_dir), "--model", TINY,
            "--no-progress", "--threads", "1", "--lr", "1e-3", "--warmup", "2", *extra]


def _steps(run_dir: Path, rank: int) -> list[int]:
    return [r["step"] for r in read_jsonl(run_dir / "ranks" / f"rank-{rank}.jsonl")]


# ----------------------------------------------------------------------------------------------
# End to end


@pytest.mark.slow
def test_ddp_two_processes_on_gloo(demo_shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "ddp"
    proc = subprocess.run(_train_cmd(demo_shards, run_dir, "--nproc-per-node", "2", "--epochs", "4", "--batch-size", "16",
                                     "--workers", "1", "--log-every", "1", "--val-batch-size", "32"),
                          env=ENV, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]

    config = json.loads((run_dir / "config.json").read_text())
    plan = config["plan"]
    assert plan["world_size"] == 2 and plan["global_batch"] == 32
    total = plan["total_steps"]
    for rank in (0, 1):  # both ranks took every step
        assert _steps(run_dir, rank) == list(range(1, total + 1))

    metrics = read_jsonl(run_dir / "metrics.jsonl")
    losses = [r["loss"] for r in metrics if r["kind"] == "train"]
    assert len(losses) == total
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses  # the loss falls

    vals = [r for r in metrics if r["kind"] == "val"]
    assert [v["step"] for v in vals] == [plan["steps_per_epoch"] * e for e in range(1, 5)]
    last = vals[-1]
    for key in ("val_loss", "f2t_R@1", "f2t_R@5", "f2t_R@10", "t2f_R@1", "f2t_medr", "t2f_medr", "chance_f2t_R@5"):
        assert math.isfinite(last[key]), key
    assert last["chance_f2t_R@5"] == pytest.approx(100 * min(5, last["val_utterances"]) / last["val_utterances"])
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "curves.png").stat().st_size > 10_000

    latest = run_dir / "latest.pt"
    ckpt = torch.load(latest, map_location="cpu", weights_only=True)
    assert {"epoch", "name", "state_dict", "optimizer", "step", "config"} <= set(ckpt)
    assert ckpt["name"] == TINY and ckpt["epoch"] == 4 and ckpt["step"] == total
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    assert (run_dir / "epoch_4.pt").is_file()

    model, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=str(latest))
    tokenizer = open_clip.get_tokenizer(TINY)
    sample = next(s for s in iter_samples(list_shards(demo_shards, "val")) if s["txt"].strip())
    image = preprocess(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))[None]
    with torch.no_grad():
        img = model.encode_image(image, normalize=True)
        txt = model.encode_text(tokenizer([sample["txt"].decode(), "a cat"]), normalize=True)
    assert img.shape == (1, 128) and txt.shape == (2, 128) and torch.isfinite(img).all() and torch.isfinite(txt).all()

    loaded = load_model(latest)  # the later build stage's entry point gives the same features
    with torch.no_grad():
        assert torch.allclose(loaded.model.encode_image(image, normalize=True), img, atol=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_step(demo_shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    args = ("--epochs", "6", "--batch-size", "16", "--workers", "0", "--save-every-steps", "3", "--log-every", "1")
    proc = subprocess.Popen(_train_cmd(demo_shards, run_dir, *args), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    latest = run_dir / "latest.pt"
    deadline = time.monotonic() + 300
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    saved = read_checkpoint(latest)["step"]
    total = json.loads((run_dir / "config.json").read_text())["plan"]["total_steps"]
    assert 0 < saved < total
    assert max(_steps(run_dir, 0)) >= saved  # it may have stepped beyond its last checkpoint

    again = subprocess.run(_train_cmd(demo_shards, run_dir, *args, "--resume"), env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"from step {saved}" in again.stderr
    assert _steps(run_dir, 0) == list(range(1, total + 1))  # steps after the checkpoint were redone once
    assert read_checkpoint(latest)["step"] == total
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in metrics if r["kind"] == "resume"] == [saved]
    assert [r["step"] for r in metrics if r["kind"] == "train"] == list(range(1, total + 1))
    lrs = [r["lr"] for r in metrics if r["kind"] == "train"]
    warmup = json.loads((run_dir / "config.json").read_text())["plan"]["warmup"]
    assert lrs[saved] == pytest.approx(cosine_lr(saved, 1e-3, warmup, total))  # the schedule continued


@pytest.mark.slow
def test_run_killed_between_checkpoint_and_validation_validates_on_resume(demo_shards: Path, tmp_path: Path) -> None:
    # a Slurm requeue (or kill) right after the epoch checkpoint, before that epoch's validation:
    # the resumed run validates that step first, so the curve has every epoch exactly once
    run_dir = tmp_path / "run"
    args = ("--epochs", "2", "--batch-size", "16", "--train-num-samples", "32", "--workers", "0", "--report-to", "none",
            "--log-every", "1")
    killed = subprocess.run(_train_cmd(demo_shards, run_dir, *args), env={**ENV, "EGOINDEX_FAILPOINT": "train-saved:1"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert read_checkpoint(run_dir / "latest.pt")["step"] == 2  # the end of epoch 1
    assert not [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "val"]

    again = subprocess.run(_train_cmd(demo_shards, run_dir, *args, "--resume"), env=ENV, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in metrics if r["kind"] == "val"] == [2, 4]
    assert [r["step"] for r in metrics if r["kind"] == "train"] == [1, 2, 3, 4]


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")  # the in-process run sets one thread; the fixture puts the count back
def test_demo_model_ego_tiny_rn_learns_and_loads(demo_shards: Path, tmp_path: Path) -> None:
    """The demo's convolutional config (ModifiedResNet with BatchNorm): the loss falls, and the
    checkpoint gives the same features through open_clip and through the build's ``load_model``
    (eval mode, so BatchNorm uses its running statistics in both)."""
    run_dir = tmp_path / "rn"
    code = launch([str(demo_shards), str(run_dir), "--model", "ego-tiny-rn", "--epochs", "3", "--batch-size", "16",
                   "--lr", "1e-3", "--warmup", "2", "--workers", "0", "--threads", "1", "--no-progress",
                   "--report-to", "none", "--log-every", "1"])
    assert code == 0
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    losses = [r["loss"] for r in metrics if r["kind"] == "train"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3, losses
    assert any(r["kind"] == "val" and math.isfinite(r["t2f_R@5"]) for r in metrics)

    latest = run_dir / "latest.pt"
    model, _, preprocess = open_clip.create_model_and_transforms("ego-tiny-rn", pretrained=str(latest))
    model.eval()
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.visual.modules())
    sample = next(s for s in iter_samples(list_shards(demo_shards, "val")) if s["txt"].strip())
    image = preprocess(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))[None]
    with torch.no_grad():
        img = model.encode_image(image, normalize=True)
    loaded = load_model(latest)
    with torch.no_grad():
        assert img.shape == (1, 128) and torch.isfinite(img).all()
        assert torch.allclose(loaded.model.encode_image(image, normalize=True), img, atol=1e-5)


@pytest.mark.slow
def test_siglip_locked_image_bf16_accumulation(demo_shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "siglip"
    proc = subprocess.run(_train_cmd(demo_shards, run_dir, "--loss", "siglip", "--lock-image", "--precision", "amp_bf16",
                                     "--accum-freq", "2", "--grad-checkpointing", "--resampled", "--epochs", "2",
                                     "--batch-size", "8", "--train-num-samples", "32", "--workers", "0",
                                     "--keep-epochs", "1", "--report-to", "none"),
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.name for p in run_dir.glob("epoch_*.pt")] == ["epoch_2.pt"]  # --keep-epochs 1
    assert not (run_dir / "tensorboard").exists()
    vals = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["kind"] == "val"]
    assert len(vals) == 2 and all(math.isfinite(v["val_loss"]) for v in vals)

    ckpt = read_checkpoint(run_dir / "latest.pt")
    assert "logit_bias" in ckpt["state_dict"] and ckpt["config"]["plan"]["global_batch"] == 16
    trained = sum(len(g["params"]) for g in ckpt["optimizer"]["param_groups"])
    text_side = [k for k in ckpt["state_dict"] if not k.startswith("visual.")]
    assert trained == len(text_side)  # LiT: the image tower is not optimised
    model, _, _ = open_clip.create_model_and_transforms(TINY, pretrained=str(run_dir / "latest.pt"), init_logit_bias=-10)
    assert load_model(run_dir / "latest.pt").model.logit_bias.item() == pytest.approx(model.logit_bias.item())


# ----------------------------------------------------------------------------------------------
# Refusals with clear messages


def test_wandb_missing_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    code = launch([str(tmp_path), str(tmp_path / "run"), "--model", TINY, "--report-to", "wandb"])
    assert code == 2 and "needs the wandb package" in " ".join(capsys.readouterr().err.split())


def _tiny_checkpoint(path: Path) -> Path:
    model = create(TINY).model
    save_checkpoint(path, make_checkpoint(model, TINY, epoch=1, step=5, config={"model": TINY}))
    return path


def test_resume_with_another_model_is_refused(demo_shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    _tiny_checkpoint(run_dir / "latest.pt")
    code = launch([str(demo_shards), str(run_dir), "--model", "ego-small-vit", "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert "ego-tiny-vit checkpoint but --model is ego-small-vit" in " ".join(err.split())

    code = launch([str(demo_shards), str(run_dir), "--model", TINY, "--no-progress"])  # no --resume: no overwrite
    assert code != 0 and "--resume" in capsys.readouterr().err


def test_wrong_model_checkpoint_fails_with_differing_shapes(tmp_path: Path) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    with pytest.raises(ModelError, match="trained as ego-tiny-vit"):
        load_model(ckpt, "ego-small-vit")
    bare = tmp_path / "weights.pt"  # a bare state dict carries no name: the shapes tell
    torch.save(read_checkpoint(ckpt)["state_dict"], bare)
    with pytest.raises(ModelError, match=r"visual\.conv1\.weight: checkpoint \(192, 3, 8, 8\) vs model \(384, 3, 16, 16\)"):
        load_model(bare, "ego-small-vit")
    with pytest.raises(ModelError, match=r"does not fit model ego-small-vit .*trained as ego-tiny-vit"):
        create("ego-small-vit", init=ckpt)
    assert load_model(bare, TINY).name == TINY


def test_pretrained_tag_asks_for_a_local_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = launch([str(tmp_path), str(tmp_path / "run"), "--model", "ViT-B-32", "--pretrained", "laion2b_s34b_b79k"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "--init PATH" in err and "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------
# Retrieval metrics on hand-made cases


def _onehots(rows: list[int], dim: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(rows), dim).float()


def test_retrieval_perfect_with_many_frames_per_utterance() -> None:
    frame_utt = torch.tensor([0, 0, 1, 2, 2, 2])  # utterances 0 and 2 cover several frames
    m = retrieval_metrics(_onehots([0, 0, 1, 2, 2, 2], 4), frame_utt, _onehots([0, 1, 2], 4))
    assert m["val_frames"] == 6 and m["val_utterances"] == 3
    for key in ("f2t_R@1", "t2f_R@1", "f2t_R@5", "t2f_R@10"):
        assert m[key] == pytest.approx(100)
    assert m["f2t_medr"] == m["t2f_medr"] == 1
    assert m["chance_f2t_R@1"] == pytest.approx(100 / 3)


def test_retrieval_all_ties_score_chance_not_perfect() -> None:
    frame_utt = torch.tensor([0, 0, 1, 2, 2, 2])
    same = torch.ones(6, 4) / 2
    m = retrieval_metrics(same, frame_utt, torch.ones(3, 4) / 2)
    for k in (1, 5, 10):
        assert m[f"f2t_R@{k}"] == pytest.approx(m[f"chance_f2t_R@{k}"])
        assert m[f"t2f_R@{k}"] == pytest.approx(m[f"chance_t2f_R@{k}"])
    assert m["f2t_medr"] == pytest.approx(2)  # expected rank among 3 tied texts


def test_retrieval_ranks_ties_and_best_frame_by_hand() -> None:
    # 2-d features at angles; texts: u0 = (1, 0), u1 = (0, 1), u2 = (1, 0) (same words as u0)
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    frames = torch.tensor([[1.0, 0.0],   # of u0: ties with u2 -> expected rank 1.5, R@1 = 1/2
                           [0.0, 1.0],   # of u1: rank 1
                           [0.6, 0.8],   # of u2: u1 0.8 > u0 = u2 0.6 -> rank 2 + 1/2
                           [1.0, 0.0]])  # of u2: ties with u0 -> 1.5
    frame_utt = torch.tensor([0, 1, 2, 2])
    m = retrieval_metrics(frames, frame_utt, texts, ks=(1, 2))
    assert m["f2t_R@1"] == pytest.approx(100 * (0.5 + 1 + 0 + 0.5) / 4)
    assert m["f2t_R@2"] == pytest.approx(100 * (1 + 1 + 0.5 + 1) / 4)
    assert m["f2t_meanr"] == pytest.approx((1.5 + 1 + 2.5 + 1.5) / 4)
    # text -> frame: u2's best frame is frame 3 (score 1), tied with frame 0 (a u0 frame): rank 1.5;
    # u0: frame 0 tied with frame 3 (negative) -> 1.5; u1: frame 1 (1.0) first -> 1
    assert m["t2f_meanr"] == pytest.approx((1.5 + 1 + 1.5) / 3)
    assert m["t2f_R@1"] == pytest.approx(100 * (0.5 + 1 + 0.5) / 3)


def test_retrieval_is_chunk_invariant() -> None:
    g = torch.Generator().manual_seed(0)
    frames = torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1)
    texts = torch.nn.functional.normalize(torch.randn(40, 16, generator=g), dim=1)
    frame_utt = torch.randint(0, 40, (300,), generator=g)
    frame_utt[:40] = torch.arange(40)  # every utterance has a frame
    big = retrieval_metrics(frames, frame_utt, texts)
    small = retrieval_metrics(frames, frame_utt, texts, chunk_elems=97)
    assert big == pytest.approx(small)


def test_validation_and_benchmark_score_ties_identically() -> None:
    # The same tied case through training's validation and metrics.retrieval (what the benchmarks
    # call): one tie rule, so the same R@K and ranks. u0 and u2 have the same text vector.
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    frames = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0], [0.7071, 0.7071]])
    frame_utt = torch.tensor([0, 1, 2, 2, 1])
    ks = (1, 2, 3)
    val = retrieval_metrics(frames, frame_utt, texts, ks=ks)
    sim = (frames @ texts.T).numpy()
    positive = (frame_utt[:, None] == torch.arange(3)[None, :]).numpy()
    for name, m in (("f2t", retrieval_at_k(sim, positive, ks)), ("t2f", retrieval_at_k(sim.T, positive.T, ks))):
        for k in ks:
            assert val[f"{name}_R@{k}"] == pytest.approx(m[f"R@{k}"])
        assert val[f"{name}_medr"] == pytest.approx(m["median_rank"])
        assert val[f"{name}_meanr"] == pytest.approx(m["mean_rank"])
    # frame 0 (u0) ties with u2: a hit at 1 with probability 1/2, expected rank 1.5
    assert retrieval_at_k(sim[:1], positive[:1], (1,))["R@1"] == pytest.approx(50.0)
    assert retrieval_at_k(sim[:1], positive[:1], (1,))["mean_rank"] == pytest.approx(1.5)


def test_chance_hit_matches_enumeration() -> None:
    n, p, k = 6, 2, 3
    hits = [any(i < k for i in perm[:p]) for perm in itertools.permutations(range(n))]
    assert chance_hit(n, p, k) == pytest.approx(sum(hits) / len(hits))


# ----------------------------------------------------------------------------------------------
# Loss, data and launch pieces


def test_dedup_loss_ignores_same_caption_negatives() -> None:
    g = torch.Generator().manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    txt = torch.nn.functional.normalize(torch.randn(4, 8, generator=g), dim=1)
    scale = torch.tensor(10.0)
    plain = open_clip.loss.ClipLoss()(img, txt, scale)
    assert DedupClipLoss()(img, txt, scale, keys=torch.arange(4)) == pytest.approx(plain.item())
    # samples 0 and 1 share a caption: neither is a negative of the other, so moving text 1
    # changes nothing in row 0 of the image->text softmax.
    keys = torch.tensor([7, 7, 8, 9])
    logits = scale * img @ txt.T
    keep = ~torch.tensor([[False, True, False, False], [True, False, False, False], [False] * 4, [False] * 4])
    expect = sum(
        -(lg[i, i] - torch.logsumexp(lg[i][keep[i]], 0)) for lg in (logits, logits.T) for i in range(4)
    ) / 8
    assert DedupClipLoss()(img, txt, scale, keys=keys) == pytest.approx(expect.item(), rel=1e-5)


def test_epoch_counts_captioned_train_frames(demo_shards: Path) -> None:
    n, source = count_train_samples(demo_shards)
    captioned = sum(1 for s in iter_samples(list_shards(demo_shards, "train")) if s.get("txt", b"").strip())
    assert (n, source) == (captioned, "sizes.json (captioned pairs)")  # the pair shards hold only captioned frames


def test_train_loader_skips_empty_captions(demo_shards: Path) -> None:
    c = create(TINY)
    loader = train_loader(demo_shards, preprocess=c.preprocess_val, tokenizer=c.tokenizer, batch_size=8, workers=0,
                          rank=0, world_size=1, seed=0)
    for batch in itertools.islice(iter(loader), 3):
        assert batch.images.shape == (8, 3, 64, 64)
        assert (batch.tokens[:, 2] != 0).all()  # [start, word, end, 0...] at least: never empty
        assert batch.text_keys.dtype == torch.int64 and batch.utt_keys.shape == (8,)


def test_shard_passes_are_split_across_ranks() -> None:
    urls = [f"s{i}.tar" for i in range(5)]
    first = [list(itertools.islice(ShardStream(urls, rank=r, world_size=2, seed=3), n)) for r, n in ((0, 3), (1, 2))]
    seen = [u["url"] for part in first for u in part]
    assert sorted(seen) == urls  # one pass: every shard once, over both ranks
    resumed = list(itertools.islice(ShardStream(urls, rank=0, world_size=2, seed=3, start_pass=0.5), 2))
    assert [u["url"] for u in resumed] == [u["url"] for u in first[0][1:3]]  # half-way: skips what was read
    few = [next(iter(ShardStream(urls[:1], rank=r, world_size=2, seed=0)))["url"] for r in (0, 1)]
    assert few == ["s0.tar", "s0.tar"]  # fewer shards than readers: shared, nobody starves


def test_torchrun_command_passes_launch_options_through(tmp_path: Path) -> None:
    argv = [str(tmp_path), str(tmp_path / "run"), "--nproc-per-node", "4", "--model", TINY, "--nnodes=2",
            "--rdzv-endpoint", "node1:29500", "--rdzv-backend", "c10d", "--epochs", "3"]
    _, lo = parse(argv)
    cmd = torchrun_command(argv, lo)
    assert cmd[1:3] == ["-m", "torch.distributed.run"]
    assert {"--nproc-per-node=4", "--nnodes=2", "--rdzv-endpoint=node1:29500", "--rdzv-backend=c10d"} <= set(cmd)
    assert "--standalone" not in cmd
    tail = cmd[cmd.index("egoindex.train") + 1:]
    assert tail == [str(tmp_path), str(tmp_path / "run"), "--model", TINY, "--epochs", "3"]


def test_cosine_schedule_warms_up_then_decays() -> None:
    lrs = [cosine_lr(s, 1.0, 4, 20) for s in range(20)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] < 0.01


def test_caption_word_drop_keeps_some_words() -> None:
    import random

    from egoindex.train.data import drop_words

    rng = random.Random(0)
    text = "the baby grabs the red ball in the kitchen"
    outs = [drop_words(text, 0.5, rng) for _ in range(400)]
    assert all(o and set(o.split()) <= set(text.split()) for o in outs)
    changed = sum(o != text for o in outs)
    assert 160 < changed < 240  # about half the captions are augmented (each keeps >= 1 word)
    assert all(drop_words(text, 0.0, rng) == text for _ in range(50))
