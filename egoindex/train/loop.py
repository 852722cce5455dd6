"""Contrastive (CLIP / SigLIP) training of open_clip models on egoindex shards: ``egoindex train``.

A loop of our own on open_clip's models and losses (open_clip_train's loader breaks on
webdataset 1.x and its DDP setup breaks on CPU). One process per device:

* ``egoindex train SHARDS RUN`` runs in this process (one device);
* ``--nproc-per-node N`` / ``--nnodes M`` re-executes itself under ``torchrun`` (launch options
  are passed through), and ``torchrun ... -m egoindex.train SHARDS RUN ...`` works directly;
  DDP runs on NCCL for GPUs and gloo on CPUs.

Every rank takes the same number of steps from an endless sharded stream
(:mod:`egoindex.train.data`): an epoch is ``samples / global batch`` steps, where samples are
the captioned train frames. The learning-rate schedule, the checkpoints and the data position
are all functions of the optimizer step, so ``--resume`` after a kill continues the same run.
Files in RUN_DIR: ``config.json``, ``latest.pt``, ``epoch_N.pt``, ``metrics.jsonl``,
``ranks/rank-R.jsonl``, ``tensorboard/``, ``curves.png``, and ``data_faults.jsonl`` when damaged
samples or shards were skipped.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from rich.console import Console
from rich.markup import escape

from egoindex.core import failpoints
from egoindex.core.fsutil import remove_stale_tmp, write_json
from egoindex.core.launch import under_torchrun, wants_torchrun
from egoindex.core.progress import progress_bar
from egoindex.core.resources import available_cpus
from egoindex.errors import EgoindexError, TrainError
from egoindex.model.clip_video import (VIDEO_PRESETS, create_clip_video, make_clip_video_checkpoint,
                                       resolve_video_name)
from egoindex.model.openclip import (check_model_name, create, link_or_copy, make_checkpoint, pretrained_tag_error,
                                     read_checkpoint, save_checkpoint, state_dict_of, unwrap, weight_differences)
from egoindex.model.sources import locate
from egoindex.train.config import TrainConfig, parse, torchrun_command
from egoindex.train.data import (Batch, FaultLog, clip_train_loader, clip_val_loader, count_train_clips,
                                 count_train_samples, train_loader, val_loader)
from egoindex.train.egomcq_val import EgoMCQMonitor
from egoindex.train.eval import encode_val, gather_to_rank0, merge_and_score
from egoindex.train.log import JsonlWriter, MetricsLog, check_reporters, plot_curves, read_jsonl, truncate_jsonl
from egoindex.train.shuffle import shuffled_captions
from egoindex.train.loss import DedupClipLoss, DedupSigLipLoss, EgoNCELoss, time_order_loss

MAX_LOGIT_SCALE = math.log(100)  # open_clip's clamp: temperature never below 0.01


def is_clip_model(name: str) -> bool:
    """A clip-level video model (a preset or ``FRAME-video``) rather than an open_clip frame model."""
    return name in VIDEO_PRESETS or name.endswith("-video")


def launch(argv: list[str]) -> int:
    """Entry of ``egoindex train``: run here (one device) or exec torchrun (several)."""
    cfg, lo = parse(argv)
    if under_torchrun() or not wants_torchrun(vars(lo)):
        return run(cfg)
    cmd = torchrun_command(argv, lo)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached


# ----------------------------------------------------------------------------------------------
# Processes and devices


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def init_distributed(cfg: TrainConfig) -> Dist:
    """Join the torchrun process group (if any) and pick this rank's device and CPU threads."""
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("--device cuda but no CUDA device is visible")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    # torchrun sets OMP_NUM_THREADS=1; share this node's cores among its processes instead.
    torch.set_num_threads(cfg.threads or max(1, available_cpus() // local_world))
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                timeout=datetime.timedelta(minutes=cfg.dist_timeout_min),
                                device_id=device if device.type == "cuda" else None)
    return Dist(rank, world, local_rank, local_world, device)


def cpu_has_bf16() -> bool:
    """Whether the CPU computes bf16 natively (else autocast to bf16 is emulated, and slow)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return True  # cannot tell: say nothing
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_factory(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "amp" and device.type != "cuda":
        raise TrainError("--precision amp (fp16 + GradScaler) needs CUDA; on CPU use --precision amp_bf16")
    dtype = torch.float16 if precision == "amp" else torch.bfloat16
    return partial(torch.autocast, device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Optimisation


def param_groups(model: torch.nn.Module, wd: float, temporal_lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """open_clip's split: no weight decay on gains, biases, norms and the logit scale/bias; a clip
    model's new parts (its temporal head ``temporal.*`` and spatial adapter ``clip.visual.spatial.*``) may learn ``temporal_lr_scale`` times faster than
    the towers it sits on (each group's ``lr_scale`` multiplies the schedule's rate)."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
        temporal = n.startswith("temporal.") or ".temporal." in n or ".visual.spatial." in n
        groups.setdefault((exclude, temporal), []).append(p)
    return [{"params": ps, "weight_decay": 0.0 if exclude else wd, "lr_scale": temporal_lr_scale if temporal else 1.0}
            for (exclude, temporal), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))]
    # (no-decay groups first: the order of egoindex <= 0.3 checkpoints' optimizer state)


def cosine_lr(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``base_lr``, then cosine decay to 0 at ``total`` (a pure function of step)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress))) * base_lr


@dataclass
class Trainer:
    """One optimizer step at a time (with open_clip-style contrastive gradient accumulation)."""

    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    autocast: Callable[[], contextlib.AbstractContextManager]
    cfg: TrainConfig
    ddp: bool
    #: the last step's time-order accuracy (``--reverse-negatives``), else None
    order_acc: float | None = None

    def _forward(self, b: Batch) -> dict[str, torch.Tensor]:
        if self.cfg.reverse_negatives:
            return self.model(b.images, b.tokens, reverse=True)
        return self.model(b.images, b.tokens)

    def _order_term(self, out: dict[str, torch.Tensor], scale: torch.Tensor, parts: int,
                    accs: list[torch.Tensor]) -> torch.Tensor | float:
        """``--reverse-negatives``: this micro-batch's time-order loss (rows of its own clips), weighted
        and divided by the number of micro-batches so the step's total is the full batch's mean."""
        if not self.cfg.reverse_negatives:
            return 0.0
        term, acc = time_order_loss(out["text_features"], out["image_features"], out["reversed_features"], scale)
        accs.append(acc.detach())
        return self.cfg.reverse_negatives * term / parts

    def _loss(self, img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
              keys: torch.Tensor | None, batches: list[Batch]) -> torch.Tensor:
        if self.cfg.loss != "egonce":
            return self.loss_fn(img, txt, scale, bias, keys=keys)
        return self.loss_fn(img, txt, scale, bias, keys=keys, verbs=torch.cat([b.verbs for b in batches]),
                            nouns=torch.cat([b.nouns for b in batches]))

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, batches: list[Batch], lr: float) -> float:
        """One update from ``accum_freq`` micro-batches; returns the (mean) loss.

        With several micro-batches, all features are first computed without gradient; then each
        micro-batch is recomputed with gradient and scored against the others' cached features,
        so the contrastive batch is the whole accumulated batch (as open_clip's --accum-freq).
        Only the last micro-batch carries the logit scale's gradient (the others see it
        detached): every micro-loss has the same value, so summing all would count it n times.
        """
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        keys = torch.cat([b.text_keys for b in batches]) if self.cfg.mask_duplicates else None
        accs: list[torch.Tensor] = []
        if len(batches) == 1:
            with self.autocast():
                out = self._forward(batches[0])
                loss = self._loss(out["image_features"], out["text_features"], out["logit_scale"],
                                  out.get("logit_bias"), keys, batches)
                loss = loss + self._order_term(out, out["logit_scale"], 1, accs)
            self._backward(loss)
            losses = [loss.detach()]
        else:
            with torch.no_grad(), self.autocast():
                cached = [self._forward(b) for b in batches]
            losses = []
            for j, b in enumerate(batches):
                last = j == len(batches) - 1
                sync = contextlib.nullcontext() if (last or not self.ddp) else self.model.no_sync()
                with sync:
                    with self.autocast():
                        out = self._forward(b)
                        img = torch.cat([out["image_features"] if i == j else c["image_features"]
                                         for i, c in enumerate(cached)])
                        txt = torch.cat([out["text_features"] if i == j else c["text_features"]
                                         for i, c in enumerate(cached)])
                        scale, bias = out["logit_scale"], out.get("logit_bias")
                        if not last:
                            scale, bias = scale.detach(), (bias.detach() if bias is not None else None)
                        loss = self._loss(img, txt, scale, bias, keys, batches)
                        loss = loss + self._order_term(out, scale, len(batches), accs)
                    self._backward(loss)
                losses.append(loss.detach())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.grad_clip_norm:
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(trainable, self.cfg.grad_clip_norm)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        with torch.no_grad():
            unwrap(self.model).logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        self.order_acc = float(torch.stack(accs).float().mean()) if accs else None
        return float(torch.stack(losses).float().mean())


def make_loss(cfg: TrainConfig, rank: int, world_size: int) -> torch.nn.Module:
    if cfg.loss == "egonce":
        # labels are not cached: a scene-negative batch has 2B rows, validation B
        return EgoNCELoss(local_loss=cfg.local_loss, gather_with_grad=cfg.gather_with_grad, cache_labels=False,
                          rank=rank, world_size=world_size, use_verb="verb" in cfg.egonce_tags,
                          use_noun="noun" in cfg.egonce_tags)
    if cfg.loss == "siglip":
        return DedupSigLipLoss(rank=rank, world_size=world_size)
    return DedupClipLoss(local_loss=cfg.local_loss, gather_with_grad=cfg.gather_with_grad, cache_labels=True,
                         rank=rank, world_size=world_size)


# ----------------------------------------------------------------------------------------------
# The run


@dataclass
class Plan:
    """Numbers derived from the config and the data (stored in config.json)."""

    world_size: int
    train_samples: int
    train_samples_source: str
    global_batch: int
    steps_per_epoch: int
    total_steps: int
    warmup: int


def make_plan(cfg: TrainConfig, world_size: int) -> Plan:
    if cfg.train_num_samples:
        n, source = cfg.train_num_samples, "--train-num-samples"
    elif is_clip_model(cfg.model):
        n, source = count_train_clips(Path(cfg.shards), cfg.speakers)
    else:
        n, source = count_train_samples(Path(cfg.shards), cfg.speakers)
    global_batch = cfg.batch_size * cfg.accum_freq * world_size
    if n < global_batch:
        raise TrainError(f"{n} train samples ({source}) do not fill one global batch of {global_batch} "
                         f"(--batch-size {cfg.batch_size} x --accum-freq {cfg.accum_freq} x {world_size} processes)")
    spe = n // global_batch
    total = spe * cfg.epochs
    warmup = cfg.warmup if cfg.warmup is not None else max(1, round(0.05 * total))
    return Plan(world_size, n, source, global_batch, spe, total, min(warmup, max(0, total - 1)))


def validate_config(cfg: TrainConfig) -> None:
    if cfg.pretrained:
        raise pretrained_tag_error(cfg.model, cfg.pretrained)
    if is_clip_model(cfg.model):
        resolve_video_name(cfg.model)
        if cfg.num_frames < 1:
            raise TrainError("--num-frames must be >= 1")
        if cfg.temporal_layers is not None and cfg.temporal_layers < 1:
            raise TrainError("--temporal-layers must be >= 1")
    else:
        check_model_name(cfg.model)
        if cfg.reverse_negatives:
            raise TrainError("--reverse-negatives needs a clip model (--model NAME-video): a frame model has no "
                             "frame order to reverse")
    if not 0 <= cfg.reverse_negatives <= 100:
        raise TrainError("--reverse-negatives W needs 0 <= W <= 100 (0 = off)")
    if cfg.epochs < 0:
        raise TrainError("--epochs must be >= 0 (0 writes the untrained model: the random-init control)")
    for name in ("batch_size", "accum_freq", "val_batch_size", "log_every"):
        if getattr(cfg, name) < 1:
            raise TrainError(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.workers is not None and cfg.workers < 0:
        raise TrainError("--workers must be >= 0")
    if cfg.keep_epochs is not None and cfg.keep_epochs < 1:
        raise TrainError("--keep-epochs must be >= 1")
    if not 0 <= cfg.caption_word_drop < 1:
        raise TrainError("--caption-word-drop must be in [0, 1)")
    if not 0 < cfg.aug_scale[0] <= cfg.aug_scale[1] <= 1:
        raise TrainError("--aug-scale MIN MAX needs 0 < MIN <= MAX <= 1")
    if cfg.init:
        locate(cfg.init)  # a file, a hub folder or a cached hf-hub: id, else a ModelError saying what is missing
    if not Path(cfg.shards).is_dir():
        raise TrainError(f"shards folder not found: {cfg.shards}")
    check_reporters(cfg.report_to)


def resume_checkpoint(cfg: TrainConfig, run_dir: Path) -> dict[str, Any] | None:
    """The checkpoint to continue from (None: a fresh run); refuses to mix runs."""
    latest = run_dir / "latest.pt"
    if not cfg.resume:
        if latest.exists():
            raise TrainError(f"{run_dir} already holds a run ({latest.name}); pass --resume to continue it "
                             f"or choose another RUN_DIR")
        return None
    if not latest.exists():
        return None
    ckpt = read_checkpoint(latest)
    had = ckpt.get("config", {}).get("speakers")
    if had != cfg.speakers:  # another set of pairs is another run, not a continuation of this one
        raise TrainError(f"--resume: {latest} trained on the captions of "
                         f"{', '.join(had) if had else 'every speaker'}, this run asks for "
                         f"{', '.join(cfg.speakers) if cfg.speakers else 'every speaker'}; pass the same --speakers "
                         "to continue it, or use another RUN_DIR")
    if ckpt.get("name") != cfg.model:
        raise TrainError(f"--resume: {latest} is a {ckpt.get('name')} checkpoint but --model is {cfg.model}; "
                         f"pass --model {ckpt.get('name')} to continue it, or use another RUN_DIR for {cfg.model}")
    return ckpt


def run(cfg: TrainConfig) -> int:
    """Train in this process (one rank); returns an exit code."""
    console = Console(stderr=True)
    try:
        validate_config(cfg)
        d = init_distributed(cfg)
    except (EgoindexError, FileNotFoundError) as e:  # TrainError, ModelError, ReportError, DatasetError ...
        console.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        return 2
    try:
        train(cfg, d, console)
        return 0
    except (EgoindexError, FileNotFoundError) as e:
        prefix = f"rank {d.rank}: " if d.world_size > 1 else ""
        console.print(f"[red]error:[/] {prefix}{escape(str(e))}", soft_wrap=True)
        return 1
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def train(cfg: TrainConfig, d: Dist, console: Console) -> None:
    run_dir = Path(cfg.run_dir)
    say = partial(console.print, soft_wrap=True, highlight=False) if d.is_main else (lambda *a, **k: None)
    random.seed(cfg.seed + d.rank)
    np.random.seed(cfg.seed + d.rank)
    torch.manual_seed(cfg.seed + d.rank)

    ckpt = resume_checkpoint(cfg, run_dir)
    start_step = int(ckpt["step"]) if ckpt else 0
    plan = make_plan(cfg, d.world_size)
    if ckpt and start_step >= plan.total_steps:  # (a fresh --epochs 0 run has nothing to do but save)
        raise TrainError(f"{run_dir} is finished (step {start_step} of {plan.total_steps}); "
                         "raise --epochs to train longer")
    autocast = autocast_factory(cfg.precision, d.device)
    if cfg.precision == "amp_bf16" and d.device.type == "cpu" and not cpu_has_bf16():
        say("[yellow]note:[/] this CPU has no native bf16 (avx512_bf16/amx): amp_bf16 runs many times slower than fp32")

    clip_mode = is_clip_model(cfg.model)
    init = Path(cfg.init) if (cfg.init and not ckpt) else None
    if clip_mode:
        created = create_clip_video(cfg.model, init=init, num_frames=cfg.num_frames,
                                    temporal_layers=cfg.temporal_layers, spatial_grid=cfg.spatial_grid,
                                    siglip=cfg.loss == "siglip",
                                    device=d.device, aug_cfg={"scale": tuple(cfg.aug_scale)})
    else:
        created = create(cfg.model, init=init, siglip=cfg.loss == "siglip", device=d.device,
                         aug_cfg={"scale": tuple(cfg.aug_scale)})
    model = created.model
    if ckpt:
        sd = state_dict_of(ckpt)
        diffs = weight_differences(model, sd)
        if diffs:
            raise TrainError(f"--resume: {run_dir / 'latest.pt'} does not fit {cfg.model} with --loss {cfg.loss}:\n  "
                             + "\n  ".join(diffs))
        model.load_state_dict(sd)
    if cfg.lock_image:
        (model.clip if clip_mode else model).lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
        adapter = getattr(model.clip.visual, "spatial", None) if clip_mode else None
        if adapter is not None:  # new, not part of the tower being locked
            adapter.requires_grad_(True)
    if cfg.lock_text:
        (model.clip if clip_mode else model).lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    groups = param_groups(model, cfg.wd, cfg.temporal_lr_scale if clip_mode else 1.0)
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "amp" else None
    if ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
    ddp = d.world_size > 1
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None)

    workers = cfg.workers if cfg.workers is not None else max(1, min(8, available_cpus() // d.local_world_size // 2))
    # the shuffled-pairs control: every rank derives the same permutation from the transcripts and the seed
    captions = shuffled_captions(Path(cfg.shards), cfg.seed, cfg.speakers) if cfg.shuffle_pairs else None
    config = {**asdict(cfg), "plan": asdict(plan), "device": str(d.device), "threads": torch.get_num_threads(),
              "loader_workers": workers}
    if captions is not None:
        config["shuffled_utterances"] = len(captions)
    if d.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        # a kill during a save leaves a checkpoint-sized ``.latest.pt.tmp-PID``: drop such leftovers
        remove_stale_tmp(run_dir, ("latest.pt", "epoch_", "metrics.jsonl", "config.json"))
        write_json(run_dir / "config.json", config)
        if ckpt:
            # against ``config`` (device resolved: "auto" -> "cpu"), as stored in the checkpoint
            changed = {k: (ckpt["config"].get(k), config[k]) for k in asdict(cfg)
                       if k != "resume" and ckpt["config"].get(k) != config[k]}
            note = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            say(escape(f"resuming {run_dir} from step {start_step}" + (f" (changed: {note})" if note else "")))
    d.barrier()
    rank_log_path = run_dir / "ranks" / f"rank-{d.rank}.jsonl"
    truncate_jsonl(rank_log_path, start_step)
    rank_log = JsonlWriter(rank_log_path)
    metrics = MetricsLog(run_dir, cfg.report_to, config, start_step, cfg.wandb_project) if d.is_main else None
    if metrics and ckpt:
        metrics.log("resume", start_step, {"epoch": start_step // plan.steps_per_epoch})

    pin = d.device.type == "cuda"
    faults = FaultLog(run_dir / "data_faults.jsonl", d.rank)
    faults_seen = faults.count()
    start_pass = start_step * plan.global_batch / plan.train_samples
    egonce = cfg.loss == "egonce"
    if clip_mode:
        loader = clip_train_loader(Path(cfg.shards), preprocess=created.preprocess_train, tokenizer=created.tokenizer,
                                   batch_size=cfg.batch_size, workers=workers, rank=d.rank, world_size=d.world_size,
                                   seed=cfg.seed, num_frames=cfg.num_frames, start_pass=start_pass,
                                   resampled=cfg.resampled, shuffle_buffer=cfg.shuffle_buffer, pin=pin,
                                   word_drop=cfg.caption_word_drop, with_tags=egonce,
                                   scene_negatives=egonce and cfg.scene_negatives, captions=captions,
                                   faults=faults, speakers=cfg.speakers)
        vloader = clip_val_loader(Path(cfg.shards), preprocess=created.preprocess_val, tokenizer=created.tokenizer,
                                  batch_size=cfg.val_batch_size, workers=workers, rank=d.rank,
                                  world_size=d.world_size, num_frames=cfg.num_frames, pin=pin, faults=faults,
                                  speakers=cfg.speakers)
    else:
        loader = train_loader(Path(cfg.shards), preprocess=created.preprocess_train, tokenizer=created.tokenizer,
                              batch_size=cfg.batch_size, workers=workers, rank=d.rank, world_size=d.world_size,
                              seed=cfg.seed, start_pass=start_pass, resampled=cfg.resampled,
                              shuffle_buffer=cfg.shuffle_buffer, pin=pin, word_drop=cfg.caption_word_drop,
                              with_tags=egonce, captions=captions, faults=faults, speakers=cfg.speakers)
        vloader = val_loader(Path(cfg.shards), preprocess=created.preprocess_val, tokenizer=created.tokenizer,
                             batch_size=cfg.val_batch_size, workers=workers, rank=d.rank, world_size=d.world_size,
                             pin=pin, faults=faults, speakers=cfg.speakers)
    mcq = EgoMCQMonitor.open(cfg.val_egomcq, Path(cfg.shards), run_dir, cfg.seed) \
        if (cfg.val_egomcq and d.is_main) else None
    if mcq is not None:
        say(escape(f"EgoMCQ at every validation: {mcq.source}"))
    if vloader is None:
        say("[yellow]no val-*.tar shards: training without validation[/]")
    say(f"{cfg.model} on {d.world_size} x {d.device.type} ({torch.get_num_threads()} threads each): "
        f"{plan.train_samples} samples ({plan.train_samples_source}), global batch {plan.global_batch}, "
        f"{plan.steps_per_epoch} steps/epoch x {cfg.epochs} epochs = {plan.total_steps} steps, warm-up {plan.warmup}")

    trainer = Trainer(model, make_loss(cfg, d.rank, d.world_size), optimizer, scaler, autocast, cfg, ddp)
    val_loss_fn = make_loss(cfg, 0, 1)

    def validate(step: int) -> None:
        if vloader is None and not cfg.val_egomcq:  # the same answer on every rank (mcq lives on rank 0 only)
            return
        t0 = time.perf_counter()
        parts = None
        if vloader is not None:
            part = encode_val(unwrap(model), vloader, val_loss_fn, d.device, autocast, cfg.mask_duplicates)
            parts = gather_to_rank0(part, d.rank, d.world_size)
        if metrics is not None:
            scores = merge_and_score(parts) if parts is not None else {}
            if mcq is not None:
                scores.update(mcq.score(unwrap(model), created.preprocess_val, created.tokenizer, d.device, autocast,
                                        cfg.num_frames))
            scores["val_seconds"] = round(time.perf_counter() - t0, 2)
            metrics.log("val", step, {"epoch": step / plan.steps_per_epoch, **scores})
            say(_val_line(step, scores, "clip" if clip_mode else "frame"))
        d.barrier()
        model.train()

    def save(step: int, epoch_end: bool) -> None:
        if not d.is_main:
            return
        if clip_mode:
            c = make_clip_video_checkpoint(model, created.name, created.frame_model,
                                           epoch=step // plan.steps_per_epoch, step=step, config=config,
                                           optimizer=optimizer, scaler=scaler)
        else:
            c = make_checkpoint(model, cfg.model, epoch=step // plan.steps_per_epoch, step=step, config=config,
                                optimizer=optimizer, scaler=scaler)
        if epoch_end:
            path = run_dir / f"epoch_{step // plan.steps_per_epoch}.pt"
            save_checkpoint(path, c)
            link_or_copy(path, run_dir / "latest.pt")
            if cfg.keep_epochs:
                for stale in epoch_checkpoints(run_dir)[:-cfg.keep_epochs]:
                    stale.unlink(missing_ok=True)
        else:
            save_checkpoint(run_dir / "latest.pt", c)
        failpoints.hit("train-saved")

    if ckpt and start_step and is_validation_step(start_step, plan, cfg) and validation_owed(run_dir, start_step, d):
        validate(start_step)  # killed (or requeued) between this checkpoint and its validation
    model.train()
    batches: Iterator[Batch] = iter(loader)
    step = start_step
    t_last, n_last = time.perf_counter(), 0
    neg_rows = neg_same = 0
    show_bar = cfg.progress and d.is_main and console.is_terminal
    with progress_bar("train", enabled=show_bar, fields="info", console=console) as bar:
        task = bar.add_task("", total=plan.total_steps, completed=start_step, info="")
        while step < plan.total_steps:
            micro = [next(batches).to(d.device) for _ in range(cfg.accum_freq)]
            if clip_mode and egonce and cfg.scene_negatives:  # batches of 2B rows: B anchors, B negatives
                neg_rows += sum(len(b.text_keys) // 2 for b in micro)
                neg_same += sum(b.negatives for b in micro)
            lr = cosine_lr(step, cfg.lr, plan.warmup, plan.total_steps)
            loss = trainer.step(micro, lr)
            step += 1
            n_last += plan.global_batch
            bar.update(task, completed=step, info=f"loss {loss:.3f}")
            if step % cfg.log_every == 0 or step == plan.total_steps:
                rank_log.write({"step": step, "loss": loss, "lr": lr, "time": time.time()})
                mean_loss = loss
                if ddp:
                    t = torch.tensor([loss], device=d.device)
                    dist.all_reduce(t)
                    mean_loss = float(t) / d.world_size
                rate = n_last / (time.perf_counter() - t_last)
                t_last, n_last = time.perf_counter(), 0
                if metrics is not None:
                    scale = unwrap(model).logit_scale.detach().exp().item()
                    extra = {"scene_negatives_same_video": neg_same / neg_rows} if neg_rows else {}
                    if trainer.order_acc is not None:  # this rank's last step: forward beats reversed
                        extra["time_order_acc"] = trainer.order_acc
                    metrics.log("train", step, {"epoch": step / plan.steps_per_epoch, "loss": mean_loss, "lr": lr,
                                                "logit_scale": scale, "samples_per_s": rate, **extra})
                    if not show_bar:
                        say(f"step {step}/{plan.total_steps}  loss {mean_loss:.4f}  lr {lr:.2e}  "
                            f"{rate:.1f} samples/s  scale {scale:.1f}")
            epoch_end = step % plan.steps_per_epoch == 0
            if epoch_end or (cfg.save_every_steps and step % cfg.save_every_steps == 0):
                save(step, epoch_end)
            if is_validation_step(step, plan, cfg):
                validate(step)
            if metrics is not None and epoch_end and (recorded := faults.count()) > faults_seen:
                faults_seen = recorded
                metrics.log("data_faults", step, {"recorded": faults_seen})
                say(f"[yellow]damaged data skipped: {faults_seen} record(s) in {faults.path}[/]")
    if plan.total_steps == 0 and start_step == 0:  # --epochs 0: the model as created (random init or --init)
        validate(0)
        save(0, True)
    rank_log.close()
    if metrics is not None:
        metrics.close()
        png = plot_curves(run_dir / "metrics.jsonl", run_dir / "curves.png")
        say(f"done: {run_dir / 'latest.pt'}" + (f", curves: {png}" if png else ""))


def is_validation_step(step: int, plan: Plan, cfg: TrainConfig) -> bool:
    """The one rule of when the run validates: every epoch end, and every ``--val-every-steps``."""
    return step % plan.steps_per_epoch == 0 or bool(cfg.val_every_steps and step % cfg.val_every_steps == 0)


def validation_owed(run_dir: Path, step: int, d: Dist) -> bool:
    """Whether metrics.jsonl lacks the validation of ``step``, the step a resumed run starts from.

    A checkpoint is saved before its step's validation, so a run killed (or requeued by Slurm) in
    between has the checkpoint but not the validation; the resumed run does it first. Rank 0 reads
    the file and tells the others (validation is collective: every rank must take part or none)."""
    owed = [d.is_main and not any(r.get("kind") == "val" and r.get("step") == step
                                  for r in read_jsonl(run_dir / "metrics.jsonl"))]
    if d.world_size > 1:
        dist.broadcast_object_list(owed, src=0)
    return bool(owed[0])


def epoch_checkpoints(run_dir: Path) -> list[Path]:
    """``epoch_N.pt`` files in RUN_DIR, oldest epoch first."""
    found = [(int(p.stem[6:]), p) for p in run_dir.glob("epoch_*.pt") if p.stem[6:].isdigit()]
    return [p for _, p in sorted(found)]


def _val_line(step: int, s: dict[str, float], unit: str = "frame") -> str:
    mcq = (f"  EgoMCQ inter/intra {s['egomcq_inter_acc']:.1f}/{s['egomcq_intra_acc']:.1f} % (chance 20)"
           if "egomcq_inter_acc" in s else "")
    if "f2t_R@1" not in s:
        return f"val @ {step}: no captioned val {unit}s" + mcq
    return (f"val @ {step}: loss {s['val_loss']:.4f}  {unit}->text R@1/5/10 {s['f2t_R@1']:.1f}/{s['f2t_R@5']:.1f}/"
            f"{s['f2t_R@10']:.1f}  text->{unit} {s['t2f_R@1']:.1f}/{s['t2f_R@5']:.1f}/{s['t2f_R@10']:.1f}  "
            f"(chance f2t {s['chance_f2t_R@1']:.1f}/{s['chance_f2t_R@5']:.1f}/{s['chance_f2t_R@10']:.1f}; "
            f"{int(s['val_utterances'])} utterances, {int(s['val_frames'])} {unit}s, {s['val_seconds']:.1f} s)" + mcq)


def main() -> None:
    """``python -m egoindex.train`` and ``torchrun -m egoindex.train`` == ``egoindex train``."""
    sys.exit(launch(sys.argv[1:]))


if __name__ == "__main__":
    main()
