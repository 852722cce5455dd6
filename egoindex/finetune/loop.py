"""Supervised fine-tuning of a video backbone on a labelled dataset: ``egoindex finetune``.

One process per device; under ``torchrun`` (``--nproc-per-node N`` re-executes
``torchrun -m egoindex finetune ...``) the ranks join a process group (NCCL on GPUs, gloo on
CPUs) and the model is wrapped in DistributedDataParallel. Per optimizer step:

* ``accum`` micro-batches of ``batch_size`` clips per rank (:mod:`egoindex.finetune.data`), each
  loss divided by ``accum`` so the accumulated gradient is that of the mean loss over all
  ``batch * accum`` clips (DDP syncs only on the last micro-batch);
* loss: cross-entropy with label smoothing ``e`` (Szegedy et al. 2016):
  ``(1 - e) * -log p_y + e * mean_k(-log p_k)`` (:func:`classification_loss`);
* AdamW (no weight decay on biases and norm gains), learning rate linear warm-up over
  ``warmup_epochs`` then cosine to 0 at the last step (:func:`warmup_cosine`, a pure function of
  the step); gradient norm clipped at ``grad_clip``;
* autocast to bf16 on CUDA only (``precision auto``); CPUs train in fp32.

After each epoch: validation top-1 on one view per video; a better one writes ``best.pt``
(weights only: what ``egoindex classify --model`` and the export load); every epoch (and every
``save_every_steps``) writes ``last.pt`` with the optimizer and trainer state; ``patience``
epochs without a better val top-1 stop the run early. Then the test split is scored with
``best.pt`` on ``test_clips x test_crops`` views and ``OUT/report/`` is written.

``--resume`` continues ``last.pt``: the data order and every sample's randomness are functions
of (seed, epoch, position) and dropout is re-seeded per step, so a killed run resumed reaches
the same weights and the same final metrics as one that was never killed (tested).

Files in OUT: ``config.json``, ``split.json``, ``last.pt``, ``best.pt``, ``metrics.jsonl``,
``tensorboard/``, ``report/``.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from egoindex.version import __version__
from egoindex.core import failpoints
from egoindex.core.fsutil import atomic_open, read_json, remove_stale_tmp, write_json
from egoindex.core.progress import progress_bar
from egoindex.core.resources import available_cpus
from egoindex.errors import ConfigError, TrainError, VideoError
from egoindex.finetune.config import FinetuneConfig, RunOptions
from egoindex.finetune.data import ClipDataset, MicroBatches, epoch_plan, steps_per_epoch
from egoindex.finetune.evaluate import predict_videos, score
from egoindex.finetune.report import write_finetune_report
from egoindex.media.frames import probe
from egoindex.media.labelled import LabelledVideo, VideoSet, load_video_set
from egoindex.model.backbones import create_classifier
from egoindex.model.openclip import read_checkpoint
from egoindex.model.video_checkpoint import load_classifier, make_checkpoint, save_checkpoint
from egoindex.media.clip_sampling import ClipSampling
from egoindex.media.clips import ClipCache

__all__ = ["FinetuneResult", "classification_loss", "optimizer_step", "param_groups", "read_result", "run",
           "warmup_cosine"]


def classification_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean over the batch of ``(1 - e) * -log p_y + e * mean_k(-log p_k)`` (label smoothing ``e``;
    PyTorch's ``label_smoothing`` is this definition)."""
    return F.cross_entropy(logits.float(), target, label_smoothing=smoothing)


def warmup_cosine(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * base_lr


def param_groups(model: torch.nn.Module, wd: float) -> list[dict[str, Any]]:
    """Weight decay on matrices and kernels only (biases, norm gains and 1-d embeddings get none)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd}]


def optimizer_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   micro_batches: list[tuple[torch.Tensor, torch.Tensor]], smoothing: float, grad_clip: float,
                   device: torch.device, autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   ddp: bool = False) -> tuple[float, int, int]:
    """One optimizer step over ``micro_batches`` (gradient accumulation): each micro-batch's mean
    loss divided by their number, so with equal micro-batches the gradient is that of the mean
    loss over all their clips; under DDP gradients are synchronised on the last one only. Returns
    (the step's loss, right top-1 predictions, clips)."""
    k = len(micro_batches)
    step_loss, right, n = 0.0, 0, 0
    for m, (x, y) in enumerate(micro_batches):
        x, y = x.to(device), y.to(device)
        with contextlib.nullcontext() if (not ddp or m == k - 1) else net.no_sync():
            with autocast():
                logits = net(x)
            loss = classification_loss(logits, y, smoothing) / k
            loss.backward()
        step_loss += float(loss.detach())
        right += int((logits.detach().argmax(1) == y).sum())
        n += len(y)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss, right, n


@dataclass
class Dist:
    rank: int
    world: int
    local_world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(options: RunOptions) -> Dist:
    """This rank's device and threads, and the process group under torchrun."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank, local_world = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    want = options.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {options.device!r}")
    if want == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda but no CUDA device is visible")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    torch.set_num_threads(options.threads or max(1, available_cpus() // local_world))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=30),
                                device_id=device if device.type == "cuda" else None)
    return Dist(rank, world, local_world, device)


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """bf16 autocast on CUDA (``auto`` or ``bf16``); fp32 on CPUs, where bf16 is refused."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return contextlib.nullcontext
    if device.type != "cuda":
        raise ConfigError("--precision bf16 is autocast on CUDA; on a CPU use fp32 (or auto)")
    return partial(torch.autocast, device_type="cuda", dtype=torch.bfloat16)


@dataclass
class FinetuneResult:
    out: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    written: dict[str, Path] = field(default_factory=dict)


def _usable(videos: list[LabelledVideo]) -> tuple[list[bool], list[dict[str, str]], list[float]]:
    """Header check of every video (fast): unreadable files are skipped with their reason; the
    durations of the readable ones."""
    ok, skipped, seconds = [], [], []
    for v in videos:
        try:
            seconds.append(float(probe(v.path).duration))
            ok.append(True)
        except VideoError as e:
            good = e.kind == "no-duration"  # decodable without a header duration
            ok.append(good)
            if not good:
                skipped.append({"video": v.rel, "class": v.label, "reason": str(e)})
    return ok, skipped, seconds


def _sampling(cfg: FinetuneConfig, model: Any) -> ClipSampling:
    size = model.image_size
    return ClipSampling(num_frames=model.num_frames, mode=cfg.sampling, stride=cfg.stride, fps=cfg.fps,
                        short_side=cfg.short_side or int(round(size * 9 / 8)), image_size=size).check()


def _resume_state(cfg: FinetuneConfig, dataset: Path, out: Path, options: RunOptions, world: int) -> dict[str, Any] | None:
    last = out / "last.pt"
    if not options.resume:
        if last.exists():
            raise TrainError(f"{out} already holds a fine-tune ({last.name}); pass --resume to continue it or choose "
                             "another OUT")
        return None
    if not last.exists():
        return None
    ckpt = read_checkpoint(last)
    had = FinetuneConfig.from_dict(ckpt.get("config", {}).get("finetune", {}))
    diff = had.differences(cfg)
    if ckpt.get("config", {}).get("dataset") != str(dataset):
        diff["dataset"] = (ckpt.get("config", {}).get("dataset"), str(dataset))
    if ckpt.get("config", {}).get("world_size", 1) != world:  # another world size is another epoch plan
        diff["processes"] = (ckpt.get("config", {}).get("world_size", 1), world)
    if diff:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise TrainError(f"--resume: {last} is another fine-tune ({listed}); pass the same options to continue it, "
                         "or use another OUT")
    if "trainer" not in ckpt:
        raise TrainError(f"--resume: {last} has no trainer state (not a last.pt of egoindex finetune)")
    return ckpt


def _write_split(out: Path, vs: VideoSet, skipped: list[dict[str, str]]) -> None:
    write_json(out / "split.json", {"source": vs.source, "classes": vs.classes,
                                    "videos": [{"video": v.rel, "class": v.label, "split": s}
                                               for v, s in zip(vs.videos, vs.split)], "skipped": skipped})


def run(dataset: str | Path, out: str | Path, cfg: FinetuneConfig, options: RunOptions = RunOptions()) -> FinetuneResult:
    """Fine-tune ``cfg.backbone`` on ``dataset`` into ``out`` (module docstring); returns the test metrics."""
    cfg.check()
    d = init_distributed(options)
    try:
        return _run(Path(dataset).resolve(), Path(out), cfg, options, d)
    finally:
        if d.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _run(dataset: Path, out: Path, cfg: FinetuneConfig, options: RunOptions, d: Dist) -> FinetuneResult:
    autocast = autocast_for(cfg.precision, d.device)
    ckpt = _resume_state(cfg, dataset, out, options, d.world)
    vs = load_video_set(dataset, splits_dir=cfg.splits, split=cfg.split, fractions=cfg.fractions, seed=cfg.seed)
    ok, skipped, seconds = _usable(vs.videos)
    parts = {p: [v for v, s, good in zip(vs.videos, vs.split, ok) if s == p and good] for p in ("train", "val", "test")}
    for p, vids in parts.items():
        if not vids:
            raise TrainError(f"no usable {p} video in {dataset} ({vs.source}); every split needs at least one")
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(out)
        _write_split(out, vs, skipped)
    torch.manual_seed(cfg.seed)
    model = create_classifier(cfg.backbone, len(vs.classes), weights=cfg.weights, num_frames=cfg.num_frames,
                              image_size=cfg.image_size, dropout=cfg.dropout)
    sampling = _sampling(cfg, model)
    mean, std = model.info["mean"], model.info["std"]
    model.to(d.device)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr)
    # the median clip length: `egoindex classify --model`'s default window on a longer video
    run_config = {"finetune": cfg.as_dict(), "dataset": str(dataset), "source": vs.source, "world_size": d.world,
                  "median_seconds": round(float(np.median(seconds)), 3) if seconds else None}
    spe = steps_per_epoch(len(parts["train"]), cfg.batch_size, cfg.accum, d.world)
    total = spe * cfg.epochs
    warmup = min(int(round(cfg.warmup_epochs * spe)), max(0, total - 1))
    st: dict[str, Any] = {"step": 0, "epoch": 0, "best_top1": -1.0, "best_epoch": 0, "bad_epochs": 0,
                          "history": [], "stopped_early": False, "finished": False}
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["trainer"]["optimizer"])
        st.update({k: v for k, v in ckpt["trainer"].items() if k != "optimizer"})
    if d.main:
        write_json(out / "config.json", {**run_config, "backbone": model.info, "sampling": sampling.as_dict(),
                                         "classes": vs.classes, "steps_per_epoch": spe, "total_steps": total,
                                         "warmup_steps": warmup, "egoindex_version": __version__})
    net: torch.nn.Module = model
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda"
                                                        else None)
    cache = ClipCache(options.cache_mb * 2**20 // max(1, options.workers or 1))
    aug = {"crop_scale": cfg.crop_scale, "flip": cfg.flip, "jitter": cfg.jitter}
    loader = MicroBatches(ClipDataset(parts["train"], vs.classes, sampling, mean, std, cache, seed=cfg.seed,
                                      augment=aug), options.workers)
    tb = None
    if d.main and options.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=st["step"] + 1 if st["step"] else None)

    def save_last() -> None:
        if not d.main:
            return
        trainer = {**st, "optimizer": optimizer.state_dict()}
        save_checkpoint(out / "last.pt", make_checkpoint(model, vs.classes, sampling, epoch=st["epoch"], step=st["step"],
                                                         metrics={}, config=run_config, trainer=trainer))
        failpoints.hit("finetune-saved")

    say = print if d.main and not options.progress else (lambda *a, **k: None)
    show = options.progress and d.main
    with progress_bar("finetune", enabled=show, fields="info") as bar:
        task = bar.add_task(f"{cfg.backbone} on {len(parts['train'])} clips", total=total, completed=st["step"], info="")
        while not st["finished"] and st["epoch"] < cfg.epochs:
            epoch = st["epoch"]
            t0 = time.perf_counter()
            acc = st.setdefault("epoch_acc", {"losses": [], "correct": 0, "clips": 0})  # survives a mid-epoch resume
            plan = epoch_plan(len(parts["train"]), epoch, cfg.seed, cfg.batch_size, cfg.accum, d.rank, d.world)
            micro = plan.micro_batches(cfg.batch_size)
            done_in_epoch = st["step"] - epoch * spe
            batches = loader.epoch(micro[done_in_epoch * cfg.accum:])
            net.train()
            for _ in range(done_in_epoch, spe):
                torch.manual_seed(cfg.seed * 1_000_003 + st["step"])  # dropout: a function of the step
                lr = warmup_cosine(st["step"], cfg.lr, warmup, total)
                for g in optimizer.param_groups:
                    g["lr"] = lr
                micro_batches = [next(batches) for _ in range(cfg.accum)]
                step_loss, right, n = optimizer_step(net, optimizer, micro_batches, cfg.label_smoothing, cfg.grad_clip,
                                                     d.device, autocast, ddp=d.world > 1)
                acc["correct"] += right
                acc["clips"] += n
                st["step"] += 1
                acc["losses"].append(step_loss)
                if tb is not None:
                    tb.add_scalar("train/loss", step_loss, st["step"])
                    tb.add_scalar("train/lr", lr, st["step"])
                bar.update(task, completed=st["step"], info=f"epoch {epoch + 1}/{cfg.epochs} loss {step_loss:.3f}")
                if options.save_every_steps and st["step"] % options.save_every_steps == 0 and st["step"] % spe:
                    save_last()
            train_s = time.perf_counter() - t0
            probs, _ = predict_videos(model, parts["val"], sampling, mean, std, cache, d.device, autocast=autocast,
                                      rank=d.rank, world=d.world)
            yv = np.array([vs.classes.index(v.label) for v in parts["val"]])
            val = score(probs, yv, vs.classes)
            st["epoch"] = epoch + 1
            losses, clips_seen = acc["losses"], acc["clips"]
            rec = {"epoch": st["epoch"], "step": st["step"], "train_loss": float(np.mean(losses)) if losses else None,
                   "train_top1": acc["correct"] / clips_seen if clips_seen else None, "val_top1": val["top1"],
                   "val_nll": val["nll"], "lr": warmup_cosine(st["step"] - 1, cfg.lr, warmup, total),
                   "train_seconds": round(train_s, 2),
                   "train_clips_per_s": round(clips_seen * d.world / train_s, 3) if train_s > 0 else None}
            st["history"].append(rec)
            st["epoch_acc"] = {"losses": [], "correct": 0, "clips": 0}
            if tb is not None:
                for k in ("val_top1", "val_nll", "train_top1"):
                    if rec[k] is not None:
                        tb.add_scalar(k.replace("_", "/", 1), rec[k], st["step"])
            improved = val["top1"] > st["best_top1"]
            if improved:
                st.update(best_top1=val["top1"], best_epoch=st["epoch"], bad_epochs=0)
                if d.main:
                    save_checkpoint(out / "best.pt", make_checkpoint(model, vs.classes, sampling, epoch=st["epoch"],
                                                                     step=st["step"], metrics=rec, config=run_config))
            else:
                st["bad_epochs"] += 1
            if cfg.patience and st["bad_epochs"] >= cfg.patience and st["epoch"] < cfg.epochs:
                st["stopped_early"] = True
            st["finished"] = st["stopped_early"] or st["epoch"] >= cfg.epochs
            if d.main:
                _write_metrics(out, st["history"])
            say(f"epoch {st['epoch']}/{cfg.epochs}: train loss {rec['train_loss']:.4f}  val top-1 {val['top1']:.3f}"
                f"{'  (best)' if improved else ''}")
            save_last()
            d.barrier()
    if tb is not None:
        tb.close()
    return _test_and_report(out, vs, parts, skipped, sampling, cfg, options, d, autocast, cache, st, run_config)


def _write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    with atomic_open(out / "metrics.jsonl", "w") as f:
        for rec in history:
            f.write(json.dumps(rec) + "\n")


def _test_and_report(out: Path, vs: VideoSet, parts: dict[str, list[LabelledVideo]], skipped: list[dict[str, str]],
                     sampling: ClipSampling, cfg: FinetuneConfig, options: RunOptions, d: Dist, autocast: Any,
                     cache: ClipCache, st: dict[str, Any], run_config: dict[str, Any]) -> FinetuneResult:
    best = load_classifier(out / "best.pt", device=d.device)
    mean, std = best.model.info["mean"], best.model.info["std"]
    test = parts["test"]
    yt = np.array([vs.classes.index(v.label) for v in test])
    t0 = time.perf_counter()
    probs, reasons = predict_videos(best.model, test, sampling, mean, std, cache, d.device, clips=cfg.test_clips,
                                    crops=cfg.test_crops, autocast=autocast, rank=d.rank, world=d.world)
    test_s = time.perf_counter() - t0
    one, _ = predict_videos(best.model, test, sampling, mean, std, cache, d.device, autocast=autocast, rank=d.rank,
                            world=d.world)
    s_multi, s_one = score(probs, yt, vs.classes), score(one, yt, vs.classes)
    n_views = cfg.test_clips * cfg.test_crops
    counts = np.bincount(yt, minlength=len(vs.classes))
    metrics: dict[str, Any] = {
        "test_top1": s_multi["top1"], "test_top5": s_multi["top5"], "test_top1_1view": s_one["top1"],
        "val_top1": st["best_top1"], "macro_precision": s_multi["macro_precision"],
        "macro_recall": s_multi["macro_recall"], "macro_f1": s_multi["macro_f1"], "test_nll": s_multi["nll"],
        "chance_top1": 1.0 / len(vs.classes), "majority_top1": float(counts.max() / max(1, counts.sum())),
        "n_classes": len(vs.classes), "n_train": len(parts["train"]), "n_val": len(parts["val"]),
        "n_test": len(test), "n_skipped": len(skipped), "test_views": n_views, "best_epoch": st["best_epoch"],
        "epochs_run": st["epoch"], "stopped_early": st["stopped_early"], "steps": st["step"],
        "test_clips_per_s": round(len(test) * n_views / test_s, 3) if test_s > 0 else None,
    }
    written: dict[str, Path] = {}
    if d.main and options.report:
        written = write_finetune_report(out / "report", best=best, videoset=vs, parts=parts, skipped=skipped,
                                        probs=probs, reasons=reasons, scored=s_multi, metrics=metrics,
                                        history=st["history"], cache=cache, config=run_config,
                                        device=d.device)
    if d.main:
        write_json(out / "result.json", {"metrics": metrics, "best": str(out / "best.pt"),
                                         "report": str(written.get("md", ""))})
    return FinetuneResult(out, metrics, st["history"], st["best_epoch"], st["stopped_early"], written)


def read_result(out: str | Path) -> dict[str, Any]:
    """``OUT/result.json`` of a finished fine-tune."""
    path = Path(out) / "result.json"
    if not path.is_file():
        raise TrainError(f"{out} has no result.json: the fine-tune has not finished (resume it with --resume)")
    return read_json(path)
