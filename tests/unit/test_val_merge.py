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


def test_every_val_shard_is_read_once_whatever_the_workers_of_each_rank() -> None:
    from egoindex.train.data import val_share

    for n in range(1, 7):
        urls = [f"val-{i}.tar" for i in range(n)]
        for world in (1, 2, 3, 4):
            for workers in (0, 1, 2, 3):
                read = []
                for rank in range(world):
                    # as the val loader does: a rank runs no more workers than it has shards
                    nw = max(1, min(workers, len(urls[rank::world])))
                    for w in range(nw):
                        read += val_share(urls, rank, world, w, nw)
                assert sorted(read) == urls, (n, world, workers)
    # the case that lost a shard when slots were counted over all (rank, worker) pairs:
    # 3 shards, 2 ranks, 2 workers (rank 0 runs 2 workers, rank 1 only 1)
    urls = ["a", "b", "c"]
    assert val_share(urls, 0, 2, 0, 2) + val_share(urls, 0, 2, 1, 2) + val_share(urls, 1, 2, 0, 1) == ["a", "c", "b"]
    assert val_share(urls[:1], 1, 2) == []  # more ranks than val shards: rank 1 reads nothing
