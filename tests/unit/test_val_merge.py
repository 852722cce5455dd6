"""Validation with more ranks than val shards: an empty rank's share adds nothing and never crashes."""

from __future__ import annotations

import torch

from egoindex.train.eval import ValShard, merge_and_score


def _share(seed: int, n: int, keys: list[int], dim: int = 8) -> ValShard:
    g = torch.Generator().manual_seed(seed)
    img = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1)
    texts = {k: torch.nn.functional.normalize(torch.randn(dim, generator=g), dim=0) for k in sorted(set(keys))}
    return ValShard(img, torch.tensor(keys, dtype=torch.int64), texts, loss_sum=2.0, batches=1)


def test_an_empty_rank_changes_nothing() -> None:
    full = _share(0, 6, [1, 1, 2, 2, 3, 3])
    empty = ValShard(torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64), {}, loss_sum=0.0, batches=0)
    alone = merge_and_score([full])
    assert merge_and_score([full, empty]) == alone  # rank 1 had no val shard
    assert merge_and_score([empty, full]) == alone  # and in the other rank order
    assert merge_and_score([empty, empty]) == {}


def test_two_ranks_equal_one_rank_holding_both_shares() -> None:
    a, b = _share(1, 4, [1, 1, 2, 2]), _share(2, 4, [3, 3, 4, 4])
    both = ValShard(torch.cat([a.image_features, b.image_features]), torch.cat([a.utt_keys, b.utt_keys]),
                    {**a.text_features, **b.text_features}, loss_sum=a.loss_sum + b.loss_sum, batches=2)
    assert merge_and_score([a, b]) == merge_and_score([both])
