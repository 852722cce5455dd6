"""Contrastive losses that know that many frames share one caption.

Frames are sampled at a few per second and an utterance lasts seconds, so one caption is paired
with many frames, and short captions ("okay", "look at that") recur across utterances. With the
plain CLIP loss, two such pairs in one global batch are false negatives: the loss pushes a frame
away from a caption that describes it exactly as well as its own.

Decision: every sample carries ``text_key``, a hash of its normalised caption (same utterance
implies same caption, so this covers duplicate utterance ids and identical words elsewhere).
Keys are all-gathered with the features, and pairs (i, j), i != j, with equal keys are

* CLIP (:class:`DedupClipLoss`): removed from the softmax (logit set to -inf), so they are
  neither positives nor negatives; each row keeps exactly its own positive, as in open_clip;
* SigLIP (:class:`DedupSigLipLoss`): labelled positive, which the pairwise sigmoid loss takes
  naturally (multi-positive).

Unlike dropping duplicate frames at batching time, this is exact across ranks and across
accumulated micro-batches, and it costs no data. ``--no-mask-duplicates`` gives the plain losses.
Both classes subclass open_clip's losses and reuse their feature gathering and logits.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn
import torch.nn.functional as F
from open_clip.loss import ClipLoss, SigLipLoss


def gather_keys(keys: torch.Tensor, world_size: int) -> torch.Tensor:
    """All ranks' keys in rank order (keys carry no gradient)."""
    if world_size == 1:
        return keys
    out = [torch.empty_like(keys) for _ in range(world_size)]
    dist.all_gather(out, keys)
    return torch.cat(out)


class DedupClipLoss(ClipLoss):
    """open_clip's ClipLoss with same-caption pairs removed from the negatives."""

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor | None = None, keys: torch.Tensor | None = None) -> torch.Tensor:
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale, logit_bias)
        labels = self.get_ground_truth(image_features.device, logits_per_image.shape[0])
        if keys is not None:
            all_keys = gather_keys(keys, self.world_size)
            row_keys = keys if (self.world_size > 1 and self.local_loss) else all_keys
            same = row_keys[:, None] == all_keys[None, :]
            same[torch.arange(len(labels), device=same.device), labels] = False
            # Rows are the same samples in both directions, so one mask serves both.
            logits_per_image = logits_per_image.masked_fill(same, float("-inf"))
            logits_per_text = logits_per_text.masked_fill(same, float("-inf"))
        return (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2


class DedupSigLipLoss(SigLipLoss):
    """open_clip's SigLipLoss with same-caption pairs labelled positive.

    Computes this rank's images against all ranks' texts in one matrix (open_clip's ``gather``
    exchange, with gradient), which equals the sum of SigLipLoss's per-rank terms.
    """

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor | None = None, keys: torch.Tensor | None = None) -> torch.Tensor:
        n = image_features.shape[0]
        if self.world_size > 1:
            all_text = torch.cat(torch.distributed.nn.all_gather(text_features))
        else:
            all_text = text_features
        logits = self.get_logits(image_features, all_text, logit_scale, logit_bias)
        cols = torch.arange(n, device=logits.device) + n * self.rank
        positive = torch.zeros_like(logits, dtype=torch.bool)
        positive[torch.arange(n, device=logits.device), cols] = True
        if keys is not None:
            positive |= keys[:, None] == gather_keys(keys, self.world_size)[None, :]
        labels = positive.to(logits.dtype) * 2 - 1
        return -F.logsigmoid(labels * logits).sum() / n
