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
:class:`EgoNCELoss` (EgoVLP's action-aware positives from verb/noun tags) makes same-caption pairs
positives, the multi-positive form of the same rule.
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


def tag_overlap(row_tags: torch.Tensor, col_tags: torch.Tensor) -> torch.Tensor:
    """``[rows x cols]`` bool: the two samples share at least one tag (multi-hot rows, any dtype).

    EgoVLP takes the cosine of the multi-hot vectors and keeps ``> 0``; for 0/1 vectors that is
    exactly "the dot product is > 0", which is what this computes (an all-zero row overlaps nothing)."""
    return (row_tags.float() @ col_tags.float().T) > 0


def egonce_positives(labels: torch.Tensor, n_cols: int, row_verbs: torch.Tensor | None, col_verbs: torch.Tensor | None,
                     row_nouns: torch.Tensor | None, col_nouns: torch.Tensor | None,
                     row_keys: torch.Tensor | None = None, col_keys: torch.Tensor | None = None,
                     use_verb: bool = True, use_noun: bool = True) -> torch.Tensor:
    """EgoNCE's positive mask ``[len(labels) x n_cols]``: the own pair (``labels``), plus pairs that
    share a verb AND a noun (EgoVLP's ``mask_v * mask_n``; only one of them with ``use_verb`` /
    ``use_noun`` off, EgoVLP's ablations), plus pairs with the same caption key (egoindex's duplicate
    rule: under a multi-positive loss a same-caption pair is a positive, as in DedupSigLipLoss).
    Tags that are None contribute no positives."""
    rows = torch.arange(len(labels), device=labels.device)
    pos = torch.zeros((len(labels), n_cols), dtype=torch.bool, device=labels.device)
    pos[rows, labels] = True
    tagged = (use_verb and row_verbs is not None) or (use_noun and row_nouns is not None)
    if tagged:
        action = torch.ones_like(pos)
        if use_verb and row_verbs is not None and col_verbs is not None:
            action &= tag_overlap(row_verbs, col_verbs)
        if use_noun and row_nouns is not None and col_nouns is not None:
            action &= tag_overlap(row_nouns, col_nouns)
        pos |= action
    if row_keys is not None and col_keys is not None:
        pos |= row_keys[:, None] == col_keys[None, :]
    return pos


class EgoNCELoss(ClipLoss):
    """EgoNCE (Lin et al., EgoVLP, NeurIPS 2022) on open_clip's ClipLoss machinery.

    Action-aware positives: for a row i, every column j in ``pos(i)`` (see :func:`egonce_positives`:
    own pair, shared verb and shared noun, same caption key) is a positive, and the term is
    ``-log(sum_{j in pos(i)} exp(s_ij) / sum_j exp(s_ij))`` with ``s = logit_scale * cos (+ bias)``,
    image->text and text->image, averaged (/2 like open_clip's CLIP loss; EgoVLP sums the two
    directions and uses a fixed temperature 0.05 instead of the learned ``logit_scale``). With no
    shared tags, no keys and no extra negatives it is exactly the CLIP InfoNCE.

    Scene-aware negatives: the batch passed on each rank may be ``2B`` rows, where rows ``B..2B-1``
    are, for each sample, a clip of the same video at another time with its own caption and tags
    (EgoVLP concatenates ``video_neg``/``text_neg``/``*_vec_neg`` after the batch). They are
    ordinary rows: their own pair is a positive, they are negatives of every other row unless their
    tags (or caption key) make them action-positives -- EgoVLP's choice, since it builds the masks
    from the concatenated tag vectors -- and they are anchors of their own loss terms. The loss does
    not need to know which rows are negatives; the data side only has to append them.

    The batch must carry, per rank and in the same row order as the features:
    ``verbs`` ``[n x V]`` and ``nouns`` ``[n x N]`` multi-hot tags (bool / uint8 / float; EgoClip
    uses V=118, N=582; any fixed width, the same on every rank), and optionally ``keys`` ``[n]``
    int64 caption hashes (``text_key`` of the shards). All are all-gathered like the features
    (rank order), so the mask is exact across ranks with ``local_loss`` on or off.
    """

    def __init__(self, *args: object, use_verb: bool = True, use_noun: bool = True, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.use_verb = use_verb
        self.use_noun = use_noun

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor | None = None, keys: torch.Tensor | None = None,
                verbs: torch.Tensor | None = None, nouns: torch.Tensor | None = None) -> torch.Tensor:
        n = image_features.shape[0]
        for name, t in (("keys", keys), ("verbs", verbs), ("nouns", nouns)):
            if t is not None and t.shape[0] != n:
                raise ValueError(f"EgoNCELoss: {name} has {t.shape[0]} rows, the features {n}")
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale, logit_bias)
        labels = self.get_ground_truth(image_features.device, logits_per_image.shape[0])
        local_rows = self.world_size > 1 and self.local_loss

        def both(t: torch.Tensor | None, as_bytes: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
            if t is None:
                return None, None
            t = t.to(torch.uint8) if as_bytes else t
            everyone = gather_keys(t.contiguous(), self.world_size)
            return (t if local_rows else everyone), everyone

        rv, cv = both(verbs, True)
        rn, cn = both(nouns, True)
        rk, ck = both(keys, False)
        pos = egonce_positives(labels, logits_per_image.shape[1], rv, cv, rn, cn, rk, ck, self.use_verb, self.use_noun)
        # The relation is symmetric and both directions have the same row and column samples.
        loss_i = (logits_per_image.logsumexp(1) - logits_per_image.masked_fill(~pos, float("-inf")).logsumexp(1)).mean()
        loss_t = (logits_per_text.logsumexp(1) - logits_per_text.masked_fill(~pos, float("-inf")).logsumexp(1)).mean()
        return (loss_i + loss_t) / 2


def time_order_loss(text_features: torch.Tensor, video_features: torch.Tensor, reversed_features: torch.Tensor,
                    logit_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each caption against its clip and the same clip played backwards (TACT's time-order
    negatives, Bagad et al., "Test of Time", CVPR 2023): ``-log softmax([s(t, v), s(t, rev v)])[0]``
    per row, averaged; returns ``(loss, accuracy)``, accuracy = share of rows with ``s(t, v) > s(t, rev v)``.

    Why it is needed and not only "more negatives": a contrastive loss whose positives and
    negatives can be told apart without frame order (other videos, other objects) never asks for
    order. Worse, a clip model started from a frame model sits on a symmetric point: "slides left"
    and "slides right" clips pool to the same vector, so the gradient that would push their two
    captions apart is zero, and with equal captions the gradient that would make the clips differ
    is zero too; the InfoNCE alone stays there (measured on the motion corpus: at chance on
    reversed clips after 60 epochs). The reversed clip differs from its clip only in order, and the
    gradient of this term on the temporal head is not zero at the start (it is ``t x (h - rev h)``,
    not a difference of captions), which breaks the symmetry. Rank-local: both columns are this
    row's own clip, so nothing is gathered."""
    s_fwd = (text_features * video_features).sum(-1)
    s_rev = (text_features * reversed_features).sum(-1)
    logits = logit_scale * torch.stack([s_fwd, s_rev], dim=1)
    loss = F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))
    return loss, (s_fwd > s_rev).float().mean()
