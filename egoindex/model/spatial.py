"""Where things are, in the frame vector: a zero-initialised spatial adapter on an open_clip image tower.

A clip model's temporal head (:mod:`egoindex.model.clip_video`) reads one vector per frame. It
can only see motion if those vectors say where things are, and a CLIP frame vector mostly does
not: contrastive training on captions pools position away. Measured on the motion corpus
(``scripts/order_probe.py``, docs/training.md "Frame order"): with the demo's frame model, a
logistic regression from a clip's 4 frame vectors to its direction of motion scores 29.5 % on
held-out videos (chance 25 %), from the tower's last feature grid pooled to 2 x 2 cells 86.4 %:
the tower sees where the object is, its pooled vector drops it. Video models put that back with
space-time attention over patch tokens (TimeSformer, EgoVLP's Frozen); that changes every layer
of the tower and makes a clip vector need every frame's tokens, which a store does not keep.

:class:`SpatialAdapter` keeps the one-vector-per-frame design: the tower's last feature grid
(ModifiedResNet: the map the attention pool reads; ViT: the patch tokens after the last block)
is average-pooled to ``g x g`` cells, each cell layer-normalised and coded by one shared small
linear map, and the codes in cell order are mapped by a ZERO-initialised linear layer into the
embedding, which is added to the tower's own output::

    frame = tower(x) + W concat_c(A ln(cell_c))      cells of avgpool_g(grid(x)); W = 0 at the start

So a clip model still starts exactly as its frame model (the adapter adds zero), and its frame
vectors gain a linear path from "what is in which cell" as soon as the temporal head asks for it.
The frame vectors a store keeps are the clip model's (adapter included), so clip vectors are still
derived from stored frame vectors without decoding again.

It is attached with forward hooks (:func:`attach`), so ``model.encode_image`` of every caller
(training, ``build``, ``Embedder``) runs it, and the open_clip tower's parameter names are kept:
the adapter's weights are ``visual.spatial.*`` beside them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from egoindex.errors import ModelError

__all__ = ["SpatialAdapter", "attach", "feature_grid", "grid_channels"]


def grid_channels(visual: nn.Module) -> int:
    """Channels of the feature grid the adapter reads; a ModelError for towers it cannot read."""
    attnpool = getattr(visual, "attnpool", None)
    if attnpool is not None and hasattr(attnpool, "k_proj"):  # open_clip ModifiedResNet
        return int(attnpool.k_proj.in_features)
    transformer = getattr(visual, "transformer", None)
    if (transformer is not None and getattr(visual, "class_embedding", None) is not None
            and getattr(visual, "grid_size", None) is not None and getattr(transformer, "batch_first", False)):
        return int(transformer.width)  # open_clip VisionTransformer: 1 class token, then the patches
    raise ModelError(f"a spatial adapter reads open_clip's ModifiedResNet or VisionTransformer towers, not "
                     f"{type(visual).__name__}; train this clip model with --spatial-grid 0")


class SpatialAdapter(nn.Module):
    """``g x g`` average-pooled feature grid -> per cell: LayerNorm, a shared ``C -> r`` code ->
    the ``g*g`` codes in cell order -> zero-init Linear into the embedding.

    Why a shared per-cell code: "what is in a cell" is described the same way in every cell and
    "where" is only the cell's place in the concatenation, at a fraction of the weights of a full
    ``g*g*C -> D`` map (on ego-tiny-rn at g = 3: 37k instead of 1.2M). Trained with the time-order
    loss, the frame vectors it makes tell the direction of motion on held-out videos at 84.1 %
    (the probe above)."""

    def __init__(self, channels: int, out_dim: int, grid: int, code: int = 16) -> None:
        super().__init__()
        if grid < 1 or code < 1:
            raise ModelError("the spatial grid must be >= 1 cell per side and the cell code >= 1 wide")
        self.grid = grid
        self.ln = nn.LayerNorm(channels)
        self.code = nn.Linear(channels, code)
        self.proj = nn.Linear(grid * grid * code, out_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self._fmap: torch.Tensor | None = None  # set by the grid hook, read once by the output hook

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) feature map -> (B, out_dim)."""
        cells = F.adaptive_avg_pool2d(fmap, self.grid).flatten(2).transpose(1, 2)  # (B, g*g, C)
        return self.proj(self.code(self.ln(cells)).flatten(1))


def _vit_fmap(visual: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    gh, gw = visual.grid_size
    patches = tokens[:, 1:]  # the class token first
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], gh, gw)


def _hook_grid(visual: nn.Module, keep: Callable[[torch.Tensor], None]) -> Any:
    """Hook ``keep(grid)`` onto the module whose forward carries the tower's last feature grid (the
    one rule for where it is: the input of a ModifiedResNet's attention pool, the output of a ViT's
    transformer as (B, C, h, w)); returns the hook handle. Refuses towers it cannot read."""
    grid_channels(visual)
    if getattr(visual, "attnpool", None) is not None:
        return visual.attnpool.register_forward_hook(lambda m, args, out: keep(args[0]))
    return visual.transformer.register_forward_hook(lambda m, args, out: keep(_vit_fmap(visual, out)))


def attach(visual: nn.Module, out_dim: int, grid: int) -> SpatialAdapter:
    """Add a :class:`SpatialAdapter` to an open_clip image tower as ``visual.spatial`` and hook it in
    (module docstring); returns it."""
    adapter = SpatialAdapter(grid_channels(visual), out_dim, grid)
    visual.spatial = adapter

    def keep_grid(fmap: torch.Tensor) -> None:
        adapter._fmap = fmap

    def add_cells(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        fmap, adapter._fmap = adapter._fmap, None
        if fmap is None:
            raise ModelError("spatial adapter: the tower ran without its feature grid (an unsupported forward path)")
        extra = adapter(fmap)
        if isinstance(output, tuple):  # output_tokens=True: (pooled, tokens)
            return (output[0] + extra.to(output[0].dtype), *output[1:])
        return output + extra.to(output.dtype)

    _hook_grid(visual, keep_grid)
    visual.register_forward_hook(add_cells)
    return adapter


def feature_grid(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images -> the tower's last feature grid (B, C', h, w), the adapter's input, by a
    hook for this one call (diagnostics: how much "where" a tower's grid holds)."""
    seen: list[torch.Tensor] = []
    hook = _hook_grid(visual, seen.append)
    try:
        visual(images)
    finally:
        hook.remove()
    return seen[-1]
