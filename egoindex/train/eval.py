"""Validation: contrastive loss and frame <-> utterance retrieval over the val shards.

Retrieval is scored over the whole val set, with captions deduplicated by utterance id (one text
per utterance, however many frames it covers):

* frame -> text: a frame is correct when its own utterance is retrieved;
* text -> frame: an utterance is correct at the best rank among its frames.

Ranks, R@K and ties follow the one rule of :mod:`egoindex.metrics.retrieval` (the benchmarks
score there too): a tie is the expectation over a random order of the tied items (a frame tied
with t other texts has expected rank g + 1 + t/2, g = texts scored strictly higher), so a model
that gives every pair the same score gets exactly chance, never a perfect score, which matters
for identical captions and for scores rounded by bf16/fp16. Scores within ``TIE_EPS`` count as tied.

Memory stays bounded: similarities are computed in chunks of rows (about ``chunk_elems``
scores at a time), never as the full frames x texts matrix. Chance levels are reported
alongside: R@k = k / #utterances for frame -> text, and 1 - C(N-p, k) / C(N, k) averaged over
utterances with p of the N frames for text -> frame.

Encoding is sharded: every rank encodes its share of the val shards, rank 0 gathers the
features and scores them, and the caller waits at a barrier.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from egoindex.metrics.retrieval import TIE_EPS, chance_hit, tie_aware_ranks
from egoindex.train.data import Batch

KS = (1, 5, 10)


@dataclass
class Ranks:
    """Per-query tie-aware ranks: expected rank and P(rank <= k) for each k."""

    expected: np.ndarray  # [Q] float64
    hit: dict[int, np.ndarray]  # k -> [Q] float64 in [0, 1]


def rank_queries(queries: torch.Tensor, items: torch.Tensor, positive_of: Callable[[slice], torch.Tensor],
                 ks: Iterable[int] = KS, chunk_elems: int = 1 << 24, eps: float = TIE_EPS) -> Ranks:
    """Tie-aware ranks (:func:`egoindex.metrics.retrieval.tie_aware_ranks`) of every query's best
    positive item, ``chunk_elems`` scores at a time.

    ``positive_of(rows)`` returns the boolean [len(rows), len(items)] positive mask of a chunk.
    """
    ks = tuple(ks)
    step = max(1, chunk_elems // max(1, len(items)))
    expected, hits = [], {k: [] for k in ks}
    for lo in range(0, len(queries), step):
        rows = slice(lo, min(lo + step, len(queries)))
        scores = (queries[rows].float() @ items.float().T).cpu().numpy()
        e, h = tie_aware_ranks(scores, positive_of(rows).cpu().numpy(), ks, eps)
        expected.append(e)
        for k in ks:
            hits[k].append(h[k])
    empty = np.zeros(0, dtype=np.float64)
    return Ranks(np.concatenate(expected) if expected else empty,
                 {k: np.concatenate(v) if v else empty for k, v in hits.items()})


def retrieval_metrics(image_features: torch.Tensor, frame_utt: torch.Tensor, text_features: torch.Tensor,
                      ks: Iterable[int] = KS, chunk_elems: int = 1 << 24) -> dict[str, float]:
    """Frame <-> utterance retrieval (module docstring) with chance levels.

    ``image_features`` [N, D] and ``text_features`` [U, D] are L2-normalised; ``frame_utt`` [N]
    gives each frame's row in ``text_features`` (one row per utterance id). Returns
    ``f2t_R@k``, ``t2f_R@k``, ``*_medr``, ``*_meanr`` and ``chance_*`` entries in percent/ranks.
    """
    ks = tuple(ks)
    frame_utt = frame_utt.long()
    n, u = len(image_features), len(text_features)
    if n == 0 or u == 0:
        return {}
    utt_ids = torch.arange(u)
    f2t = rank_queries(image_features, text_features, lambda rows: frame_utt[rows, None] == utt_ids[None, :],
                       ks, chunk_elems)
    t2f = rank_queries(text_features, image_features, lambda rows: utt_ids[rows, None] == frame_utt[None, :],
                       ks, chunk_elems)
    frames_per_utt = torch.bincount(frame_utt, minlength=u).double()
    out: dict[str, float] = {"val_frames": float(n), "val_utterances": float(u)}
    for name, r in (("f2t", f2t), ("t2f", t2f)):
        for k in ks:
            out[f"{name}_R@{k}"] = 100.0 * float(r.hit[k].mean())
        out[f"{name}_medr"] = float(np.median(r.expected))
        out[f"{name}_meanr"] = float(r.expected.mean())
    for k in ks:
        out[f"chance_f2t_R@{k}"] = 100.0 * min(k, u) / u
        out[f"chance_t2f_R@{k}"] = 100.0 * float(np.mean([chance_hit(n, int(p), k) for p in frames_per_utt]))
    out["chance_f2t_medr"] = (u + 1) / 2
    out["chance_t2f_medr"] = float(np.median(((n + 1) / (frames_per_utt + 1)).numpy()))
    return out


@dataclass
class ValShard:
    """What one rank contributes to validation."""

    image_features: torch.Tensor  # [n, D] float32, CPU
    utt_keys: torch.Tensor  # [n] int64
    text_features: dict[int, torch.Tensor]  # utterance key -> [D]
    loss_sum: float
    batches: int


@torch.no_grad()
def encode_val(model: torch.nn.Module, batches: Iterable[Batch], loss_fn: Callable, device: torch.device,
               autocast: Callable[[], contextlib.AbstractContextManager], mask_duplicates: bool) -> ValShard:
    """Encode this rank's val batches; the loss is per batch, this rank only (fixed batch size)."""
    model.eval()
    feats, ukeys, texts = [], [], {}
    loss_sum, count = 0.0, 0
    for batch in batches:
        b = batch.to(device)
        with autocast():
            out = model(b.images, b.tokens)
            loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"], out.get("logit_bias"),
                           keys=b.text_keys if mask_duplicates else None)
        loss_sum += float(loss)
        count += 1
        feats.append(out["image_features"].float().cpu())
        ukeys.append(batch.utt_keys)
        for key, tf in zip(batch.utt_keys.tolist(), out["text_features"].float().cpu()):
            texts.setdefault(key, tf)
    dim = feats[0].shape[1] if feats else 0
    return ValShard(torch.cat(feats) if feats else torch.zeros(0, dim),
                    torch.cat(ukeys) if ukeys else torch.zeros(0, dtype=torch.int64),
                    texts, loss_sum, count)


def merge_and_score(parts: list[ValShard], ks: Iterable[int] = KS) -> dict[str, float]:
    """Rank 0: combine all ranks' shares and compute loss and retrieval metrics."""
    batches = sum(p.batches for p in parts)
    if batches == 0:
        return {}
    texts: dict[int, torch.Tensor] = {}
    for p in parts:
        for k, v in p.text_features.items():
            texts.setdefault(k, v)
    order = {k: i for i, k in enumerate(texts)}
    # a rank with no val shard (fewer val shards than ranks) sends an empty (0, 0) share: it adds
    # nothing, and its shape must not meet the others' [n, D] in the concatenation
    image_features = torch.cat([p.image_features for p in parts if p.image_features.shape[0] > 0])
    frame_utt = torch.tensor([order[k] for p in parts for k in p.utt_keys.tolist()], dtype=torch.int64)
    out = {"val_loss": sum(p.loss_sum for p in parts) / batches}
    out.update(retrieval_metrics(image_features, frame_utt, torch.stack(list(texts.values())), ks))
    return out


def gather_to_rank0(part: ValShard, rank: int, world_size: int) -> list[ValShard] | None:
    """All ranks' shares on rank 0 (None elsewhere)."""
    if world_size == 1:
        return [part]
    parts: list[ValShard] | None = [None] * world_size if rank == 0 else None  # type: ignore[list-item]
    dist.gather_object(part, parts, dst=0)
    return parts
