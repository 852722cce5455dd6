"""The options of ``egoindex train``: one definition for the CLI, ``python -m egoindex.train``
and ``torchrun -m egoindex.train``, and the torchrun command that runs several processes.

``TrainConfig`` holds what defines a run (stored in RUN_DIR/config.json and in checkpoints);
the launch options (``--nproc-per-node``, ``--nnodes``, rendezvous) only decide how processes
are started and are passed through to torchrun unchanged.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields

from egoindex.core.launch import LAUNCH_OPTIONS, without_launch_options
from egoindex.core.launch import torchrun_command as launch_command

PRECISIONS = ("fp32", "amp", "amp_bf16")
LOSSES = ("clip", "siglip", "egonce")
EGONCE_TAGS = ("verb+noun", "verb", "noun")


@dataclass
class TrainConfig:
    """Everything that defines a run (stored in config.json and in every checkpoint)."""

    shards: str
    run_dir: str
    model: str = "ViT-B-32"
    init: str | None = None
    pretrained: str | None = None
    lock_image: bool = False
    lock_text: bool = False
    loss: str = "clip"
    egonce_tags: str = "verb+noun"
    scene_negatives: bool = True
    reverse_negatives: float = 0.0
    num_frames: int = 4
    temporal_layers: int | None = None
    temporal_lr_scale: float = 1.0
    spatial_grid: int = 0
    val_egomcq: str | None = None
    mask_duplicates: bool = True
    local_loss: bool = True
    gather_with_grad: bool = True
    epochs: int = 15
    batch_size: int = 64
    accum_freq: int = 1
    lr: float = 5e-4
    wd: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    warmup: int | None = None
    grad_clip_norm: float | None = 1.0
    precision: str = "fp32"
    grad_checkpointing: bool = False
    seed: int = 0
    aug_scale: list[float] = field(default_factory=lambda: [0.4, 1.0])
    caption_word_drop: float = 0.0
    shuffle_pairs: bool = False
    #: ``--speakers``: train (and validate) only on the captions of these speakers (sorted), None: all
    speakers: list[str] | None = None
    workers: int | None = None
    shuffle_buffer: int = 1000
    resampled: bool = False
    train_num_samples: int | None = None
    val_batch_size: int = 64
    val_every_steps: int | None = None
    save_every_steps: int | None = None
    keep_epochs: int | None = None
    resume: bool = False
    log_every: int = 10
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    wandb_project: str = "egoindex"
    progress: bool = True
    device: str = "auto"
    threads: int | None = None
    dist_timeout_min: float = 30.0


def speaker_list(s: str) -> list[str]:
    """``"FEM, MAL,FEM"`` -> ``["FEM", "MAL"]`` (sorted, once each: the run's config records it)."""
    labels = sorted({x.strip() for x in s.split(",") if x.strip()})
    if not labels:
        raise argparse.ArgumentTypeError("--speakers needs at least one label, e.g. --speakers FEM,MAL")
    return labels


def build_parser() -> argparse.ArgumentParser:
    """The single definition of the options of ``egoindex train`` and ``egoindex.train``."""
    d = TrainConfig("", "")
    p = argparse.ArgumentParser(
        prog="egoindex train",
        description="Train an open_clip model contrastively on frames and their utterances (WebDataset shards "
                    "from `egoindex ingest`). Example: egoindex train demo/shards runs/demo --model ego-tiny-vit",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("shards", metavar="SHARDS_DIR", help="folder written by `egoindex ingest`")
    p.add_argument("run_dir", metavar="RUN_DIR", help="output folder: checkpoints, logs, curves")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=d.model,
                   help="open_clip frame model (RN50, ViT-B-32, ViT-B-16, ViT-L-14, ego-tiny-vit, ego-tiny-rn, ...) or a "
                        "clip-level video model: a preset (ego-tiny-rn-video, ViT-B-32-video, ViT-B-16-video, "
                        "ViT-L-14-video) or FRAME-video; clip models train on the clip shards, N frames per moment")
    g.add_argument("--num-frames", type=int, default=d.num_frames,
                   help="clip models: frames per clip (segments of the moment; a random frame of each in training, "
                        "the middle one in validation)")
    g.add_argument("--temporal-layers", type=int, default=None,
                   help="clip models: temporal transformer layers (default: the preset's)")
    g.add_argument("--spatial-grid", type=int, default=d.spatial_grid, metavar="G",
                   help="clip models: a zero-initialised adapter adds the frame tower's feature grid, average-pooled to "
                        "G x G cells, to every frame vector, so the temporal head can see where things are "
                        "(docs/training.md); 0 = none (the default)")
    g.add_argument("--temporal-lr-scale", type=float, default=d.temporal_lr_scale, metavar="X",
                   help="clip models: the new temporal head learns X times the learning rate of the towers")
    g.add_argument("--init", default=None, metavar="PATH",
                   help="start from local weights: a checkpoint (egoindex, open_clip_train), a state dict "
                        "(.pt/.bin/.safetensors), a Hugging Face open_clip folder or a cached hf-hub:ORG/REPO")
    g.add_argument("--pretrained", default=None, metavar="TAG",
                   help="not supported offline: download the weights elsewhere and use --init PATH")
    g.add_argument("--lock-image", action="store_true", help="freeze the image tower, train the text side (LiT)")
    g.add_argument("--lock-text", action="store_true",
                   help="freeze the text tower (the captions' vectors stay the --init model's; fewer weights to fit "
                        "a small corpus with)")
    g.add_argument("--grad-checkpointing", action="store_true", help="recompute activations in backward (less memory)")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", choices=LOSSES, default=d.loss,
                   help="CLIP softmax loss, SigLIP sigmoid loss, or EgoNCE (EgoVLP: captions sharing a verb and a noun "
                        "are positives; with clip models each batch adds a same-video clip per sample as a negative)")
    g.add_argument("--egonce-tags", choices=EGONCE_TAGS, default=d.egonce_tags,
                   help="EgoNCE positives: a shared verb and noun (EgoVLP), or only one of them (its ablations)")
    g.add_argument("--scene-negatives", action=argparse.BooleanOptionalAction, default=d.scene_negatives,
                   help="EgoNCE with a clip model: add a clip of the same video at another time per sample")
    g.add_argument("--reverse-negatives", type=float, default=d.reverse_negatives, metavar="W",
                   help="clip models: add W x a time-order loss, each caption against its clip and the same frames "
                        "played backwards (TACT); without it nothing asks a contrastive loss for frame order "
                        "(docs/training.md); 0 = off")
    g.add_argument("--shuffle-pairs", action="store_true",
                   help="the shuffled-pairs control (CVCL): every train utterance's frames get another utterance's "
                        "caption (a seeded permutation without fixed points, --seed); val stays true")
    g.add_argument("--speakers", type=speaker_list, default=None, metavar="A,B",
                   help="train only on the captions of these speakers (comma-separated labels from ingest's --rttm or "
                        "the transcripts, e.g. FEM,MAL for adult speech; 'unknown' = captions without a speaker): "
                        "frames paired with anyone else's utterance are left out of training and validation")
    g.add_argument("--mask-duplicates", action=argparse.BooleanOptionalAction, default=d.mask_duplicates,
                   help="pairs with the same caption (same utterance) are not negatives of each other")
    g.add_argument("--local-loss", action=argparse.BooleanOptionalAction, default=d.local_loss,
                   help="CLIP: each rank scores its own rows against the gathered batch")
    g.add_argument("--gather-with-grad", action=argparse.BooleanOptionalAction, default=d.gather_with_grad,
                   help="CLIP: gradients flow through the gathered features")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=d.epochs,
                   help="passes over the train data; 0 validates and saves the model as created (epoch_0.pt: the "
                        "random-init control, or the --init model)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="per device")
    g.add_argument("--accum-freq", type=int, default=d.accum_freq,
                   help="micro-batches per step; the contrastive batch grows with it (open_clip's feature cache)")
    g.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (AdamW)")
    g.add_argument("--wd", type=float, default=d.wd, help="weight decay (not on gains, biases, logit scale)")
    g.add_argument("--beta1", type=float, default=d.beta1)
    g.add_argument("--beta2", type=float, default=d.beta2)
    g.add_argument("--eps", type=float, default=d.eps)
    g.add_argument("--warmup", type=int, default=None, help="linear warm-up steps before the cosine decay "
                                                            "(default: 5%% of all steps)")
    g.add_argument("--grad-clip-norm", type=float, default=d.grad_clip_norm, help="0 disables clipping")
    g.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="amp = fp16 autocast + GradScaler (CUDA); amp_bf16 = bf16 autocast (CUDA or CPU)")
    g.add_argument("--seed", type=int, default=d.seed)
    g = p.add_argument_group("data")
    g.add_argument("--aug-scale", nargs=2, type=float, default=d.aug_scale, metavar=("MIN", "MAX"),
                   help="random-resized-crop area range (open_clip's 0.9 1.0 cannot crop a square-ish region from a "
                        "16:9 frame, so it would fall back to one fixed, squashed centre crop)")
    g.add_argument("--caption-word-drop", type=float, default=d.caption_word_drop, metavar="P",
                   help="text augmentation: half of the captions lose each word with probability P (at least one "
                        "word stays), so the text tower learns what single words mean instead of memorising "
                        "whole sentences; helps when there are few distinct captions (0 = off)")
    g.add_argument("--workers", type=int, default=None,
                   help="loader processes per device, spawned "
                        "(default: half this process's share of the cores, 1 to 8)")
    g.add_argument("--shuffle-buffer", type=int, default=d.shuffle_buffer,
                   help="samples in each reader's shuffle buffer")
    g.add_argument("--resampled", action="store_true", help="draw shards with replacement instead of splitting passes")
    g.add_argument("--train-num-samples", type=int, default=None,
                   help="samples per epoch (default: captioned train frames from the ingest records)")
    g = p.add_argument_group("validation and checkpoints")
    g.add_argument("--val-batch-size", type=int, default=d.val_batch_size, help="batch size of the val loss")
    g.add_argument("--val-egomcq", default=None, metavar="FILE",
                   help="also score EgoMCQ (inter/intra accuracy) at every validation: an official or generated "
                        "egomcq.json over val videos, or 'generate' (questions from the val clip shards' moments)")
    g.add_argument("--val-every-steps", type=int, default=None, help="also validate every N steps (always per epoch)")
    g.add_argument("--save-every-steps", type=int, default=None, help="also write latest.pt every N steps")
    g.add_argument("--keep-epochs", type=int, default=None, metavar="K",
                   help="keep only the newest K epoch_N.pt files (default: keep all)")
    g.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from latest.pt")
    g = p.add_argument_group("logging")
    g.add_argument("--log-every", type=int, default=d.log_every, help="steps between log lines")
    g.add_argument("--report-to", nargs="+", default=d.report_to, metavar="NAME",
                   help="tensorboard, wandb (WANDB_MODE=offline works without network) or none")
    g.add_argument("--wandb-project", default=d.wandb_project)
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g = p.add_argument_group("devices")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device)
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: cores / processes)")
    g.add_argument("--dist-timeout-min", type=float, default=d.dist_timeout_min,
                   help="how long ranks wait for each other (e.g. for validation) before failing")
    g = p.add_argument_group("launch (passed to torchrun)")
    for opt, (default, help_) in LAUNCH_OPTIONS.items():
        g.add_argument(opt, default=default, help=help_)
    return p


def parse(argv: list[str]) -> tuple[TrainConfig, argparse.Namespace]:
    """(run config, launch options) from a command line."""
    ns = build_parser().parse_args(argv)
    names = {f.name for f in fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in vars(ns).items() if k in names})
    cfg.report_to = [r for r in cfg.report_to if r != "none"]
    launch = argparse.Namespace(**{k: v for k, v in vars(ns).items() if k not in names})
    return cfg, launch


def torchrun_command(argv: list[str], launch: argparse.Namespace) -> list[str]:
    """The ``python -m torch.distributed.run ... -m egoindex.train ...`` command for ``argv``
    (:func:`egoindex.core.launch.torchrun_command`; ``launch``: the launch options of :func:`parse`)."""
    return launch_command(vars(launch), ["-m", "egoindex.train", *without_launch_options(argv)])
