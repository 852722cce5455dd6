"""``egoindex train``: every argument goes to :func:`egoindex.train.loop.launch`.

Why typer does not parse them: the options are defined once, in :mod:`egoindex.train.config`, for
this command, ``python -m egoindex.train`` and ``torchrun -m egoindex.train`` alike; restating
them here would give two definitions to keep in step. ``egoindex train --help`` is argparse's.
"""

from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Train an open_clip model (CLIP or SigLIP loss) on the shards; all options: egoindex train --help.

    One device runs in this process; --nproc-per-node N / --nnodes M re-run it under torchrun
    (DDP on NCCL or gloo). Writes checkpoints that open_clip loads, metrics.jsonl, TensorBoard
    logs and curves.png to RUN_DIR; --resume continues a killed run.

    Example: egoindex train demo/shards runs/demo --model ego-tiny-vit
    """
    from egoindex.train.loop import launch  # imports torch and open_clip

    raise typer.Exit(launch(list(ctx.args)))


def register(app: typer.Typer) -> None:
    """Add ``train``, with its arguments left unparsed for :mod:`egoindex.train.config`."""
    app.command(
        "train",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(train)
