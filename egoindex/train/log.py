"""Where training metrics go: metrics.jsonl, TensorBoard (default), wandb (optional), a PNG.

``RUN_DIR/metrics.jsonl`` is the record of truth (one JSON object per line, ``kind`` = train,
val, resume or data_faults, always with ``step``); TensorBoard and wandb are views of the same
numbers. On resume, lines beyond the checkpoint's step (written by the killed run after its last
checkpoint) are dropped so the file reads as one uninterrupted run. Every rank also appends its own steps to
``RUN_DIR/ranks/rank-R.jsonl`` (proof that all ranks step, and where each one was).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from egoindex.core.fsutil import atomic_open
from egoindex.errors import ReportError

REPORTERS = ("tensorboard", "wandb")




def truncate_jsonl(path: Path, max_step: int) -> None:
    """Keep only the records with ``step <= max_step`` (atomic rewrite)."""
    if not path.is_file():
        return
    keep = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by the kill
                continue
            if rec.get("step", 0) <= max_step:
                keep.append(line if line.endswith("\n") else line + "\n")
    with atomic_open(path, "w") as f:
        f.writelines(keep)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return out


class JsonlWriter:
    """Line-buffered appends: a kill loses at most the line being written."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "a", encoding="utf-8", buffering=1)

    def write(self, rec: dict[str, Any]) -> None:
        self._f.write(json.dumps(rec) + "\n")

    def close(self) -> None:
        self._f.close()


class MetricsLog:
    """Rank 0's metrics sink: metrics.jsonl plus the chosen reporters."""

    def __init__(self, run_dir: Path, report_to: Iterable[str], config: dict[str, Any], resume_step: int,
                 wandb_project: str):
        self.path = run_dir / "metrics.jsonl"
        truncate_jsonl(self.path, resume_step)
        self.jsonl = JsonlWriter(self.path)
        self.tb = None
        self.wandb = None
        report_to = set(report_to)
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step else None)
        if "wandb" in report_to:
            self.wandb = start_wandb(run_dir, config, wandb_project)

    def log(self, kind: str, step: int, values: dict[str, Any]) -> None:
        self.jsonl.write({"kind": kind, "step": step, **values})
        numeric = {f"{kind}/{k}": v for k, v in values.items() if isinstance(v, (int, float)) and k != "epoch"}
        if self.tb is not None:
            for k, v in numeric.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(numeric, step=step)

    def close(self) -> None:
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def check_reporters(report_to: Iterable[str]) -> None:
    """Fail before training starts when a reporter cannot work."""
    for r in report_to:
        if r not in REPORTERS:
            raise ReportError(f"--report-to {r}: choose from {', '.join(REPORTERS)} or none")
        if r == "wandb":
            try:
                import wandb  # noqa: F401
            except ImportError as e:
                raise ReportError("--report-to wandb needs the wandb package (pip install wandb); "
                                  "with WANDB_MODE=offline it logs without network, "
                                  "sync later with `wandb sync`") from e


def start_wandb(run_dir: Path, config: dict[str, Any], project: str) -> Any:
    """A wandb run tied to RUN_DIR (same id on resume); WANDB_MODE=offline needs no network."""
    import wandb

    id_file = run_dir / "wandb_id.txt"
    if id_file.is_file():
        run_id = id_file.read_text().strip()
    else:
        run_id = wandb.util.generate_id()
        id_file.write_text(run_id + "\n")
    return wandb.init(project=project, dir=str(run_dir), id=run_id, resume="allow", config=config,
                      name=run_dir.name, mode=os.environ.get("WANDB_MODE"))


def plot_curves(metrics_path: Path, out_png: Path) -> Path | None:
    """Train/val loss and val R@k (with chance) against step, as a PNG (None if nothing to plot)."""
    recs = read_jsonl(metrics_path)
    train = [r for r in recs if r["kind"] == "train" and "loss" in r]
    val = [r for r in recs if r["kind"] == "val" and "val_loss" in r]
    mcq = [r for r in recs if r["kind"] == "val" and "egomcq_inter_acc" in r]
    if not train and not val and not mcq:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if mcq else 2, figsize=(18 if mcq else 12, 4.5))
    ax_loss, ax_r = axes[0], axes[1]
    if mcq:  # EgoVLP's pretraining monitor: EgoMCQ accuracy against step, chance 20 %
        ax_m = axes[2]
        for key, label in (("egomcq_inter_acc", "inter-video"), ("egomcq_intra_acc", "intra-video")):
            ax_m.plot([r["step"] for r in mcq], [r.get(key, float("nan")) for r in mcq], "o-", label=label)
        ax_m.axhline(20.0, color="grey", linestyle=":", label="chance (1 in 5)")
        ax_m.set_xlabel("step")
        ax_m.set_ylabel("accuracy (%)")
        ax_m.set_ylim(0, 100)
        ax_m.set_title("val EgoMCQ")
        ax_m.legend(fontsize=7)
        ax_m.grid(alpha=0.3)
    if train:
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", alpha=0.8)
    if val:
        ax_loss.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="val loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("contrastive loss")
    ax_loss.legend()
    ax_loss.grid(alpha=0.3)
    steps = [r["step"] for r in val]
    for i, k in enumerate((1, 5, 10)):
        for direction, style in (("f2t", "-"), ("t2f", "--")):
            key = f"{direction}_R@{k}"
            if val and key in val[-1]:
                ax_r.plot(steps, [r.get(key, float("nan")) for r in val], style, marker="o", color=f"C{i}",
                          label=f"{direction} R@{k}")
        if val and f"chance_f2t_R@{k}" in val[-1]:
            ax_r.axhline(val[-1][f"chance_f2t_R@{k}"], color=f"C{i}", linestyle=":", alpha=0.7,
                         label=f"chance f2t R@{k}")
    ax_r.set_xlabel("step")
    ax_r.set_ylabel("recall (%)")
    ax_r.set_ylim(0, 100)
    ax_r.set_title("val retrieval: frame->text (f2t), text->frame (t2f)")
    ax_r.legend(fontsize=7, ncol=2)
    ax_r.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_png, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return out_png
