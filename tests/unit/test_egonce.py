"""EgoNCELoss (egoindex/train/loss.py): masks, the formula, CLIP equivalence, gradients, and a
2-process gloo run that must equal the single-process loss on the concatenated batch."""

from __future__ import annotations

import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from egoindex.train.loss import EgoNCELoss, egonce_positives

V, N = 6, 8


def multi_hot(rows: list[list[int]], dim: int) -> torch.Tensor:
    out = torch.zeros(len(rows), dim, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, r] = True
    return out


def features(n: int, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    img = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    txt = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    return img, txt


def loop_egonce(img: np.ndarray, txt: np.ndarray, scale: float, verbs: np.ndarray, nouns: np.ndarray,
                keys: np.ndarray | None) -> float:
    """The EgoNCE formula written out pair by pair."""
    n = len(img)
    s = scale * img @ txt.T
    total = 0.0
    for sims in (s, s.T):
        for i in range(n):
            pos = [j for j in range(n) if j == i or ((verbs[i] & verbs[j]).any() and (nouns[i] & nouns[j]).any())
                   or (keys is not None and keys[i] == keys[j])]
            total += -math.log(sum(math.exp(sims[i, j]) for j in pos) / sum(math.exp(sims[i, j]) for j in range(n)))
    return total / (2 * n)


def test_masks_on_a_hand_made_batch() -> None:
    # B = 3 samples, then their 3 same-video negatives (rows 3..5), each with its own tags.
    #   0 "pick cup"   1 "pick knife"   2 "put cup"   3 (neg of 0) "wash plate"   4 (neg of 1) "pick knife"
    #   5 (neg of 2) "open door"
    verbs = multi_hot([[0], [0], [1], [2], [0], [3]], V)  # pick pick put wash pick open
    nouns = multi_hot([[0], [1], [0], [2], [1], [3]], N)  # cup knife cup plate knife door
    labels = torch.arange(6)
    pos = egonce_positives(labels, 6, verbs, verbs, nouns, nouns)
    assert pos.diagonal().all()
    assert pos[1, 4] and pos[4, 1]  # same verb and noun: an action positive, also across the neg half
    assert not pos[0, 1] and not pos[1, 0]  # same verb only (pick), different noun: NOT positive
    assert not pos[0, 2]  # same noun only (cup): NOT positive
    assert not pos[0, 3] and not pos[2, 5]  # each sample's same-video negative stays a negative
    assert pos.sum() == 6 + 2
    # Same caption key: positive even without tags (the duplicate-caption rule).
    keys = torch.tensor([10, 11, 12, 10, 14, 15])
    pos_k = egonce_positives(labels, 6, verbs, verbs, nouns, nouns, keys, keys)
    assert pos_k[0, 3] and pos_k[3, 0] and pos_k.sum() == 6 + 2 + 2
    # Ablations as in EgoVLP: noun only makes 0 and 2 (cup) positives.
    assert egonce_positives(labels, 6, verbs, verbs, nouns, nouns, use_verb=False)[0, 2]

    # The same-video negative is in the denominator: moving its similarity changes row 0's loss.
    img, txt = features(6)
    loss = EgoNCELoss()
    base = loss(img, txt, torch.tensor(10.0), verbs=verbs, nouns=nouns)
    txt2 = txt.clone()
    txt2[3] = img[0]  # the negative's caption now matches image 0 perfectly
    assert loss(img, txt2, torch.tensor(10.0), verbs=verbs, nouns=nouns) > base


@pytest.mark.parametrize("with_keys", [False, True])
def test_equals_the_loop_formula(with_keys: bool) -> None:
    rng = np.random.default_rng(1)
    n = 12
    verbs = rng.random((n, V)) < 0.25
    nouns = rng.random((n, N)) < 0.2
    keys = rng.integers(0, 5, n) if with_keys else None
    img, txt = features(n, seed=2)
    got = EgoNCELoss()(img, txt, torch.tensor(7.0, dtype=torch.float64), verbs=torch.from_numpy(verbs),
                       nouns=torch.from_numpy(nouns), keys=None if keys is None else torch.from_numpy(keys))
    want = loop_egonce(img.numpy(), txt.numpy(), 7.0, verbs, nouns, keys)
    assert float(got) == pytest.approx(want, rel=1e-10)
    assert (verbs[:, None] & verbs[None]).any(-1).sum() > n  # the batch does share tags


def test_equals_clip_infonce_without_shared_tags() -> None:
    n = 7
    img, txt = features(n, seed=3)
    scale = torch.tensor(12.0, dtype=torch.float64)
    logits = scale * img @ txt.T
    labels = torch.arange(n)
    clip = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    distinct = multi_hot([[i % V] for i in range(n)], V)  # verbs shared, nouns never
    nouns = multi_hot([[i] for i in range(n)], N)
    assert float(EgoNCELoss()(img, txt, scale, verbs=distinct, nouns=nouns)) == pytest.approx(float(clip), rel=1e-12)
    assert float(EgoNCELoss()(img, txt, scale)) == pytest.approx(float(clip), rel=1e-12)


def test_gradients_flow_and_bad_rows_are_refused() -> None:
    img, txt = features(5, seed=4)
    img.requires_grad_(True)
    txt.requires_grad_(True)
    scale = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    verbs = multi_hot([[0], [0], [1], [1], [2]], V)
    nouns = multi_hot([[0], [0], [1], [2], [2]], N)
    EgoNCELoss()(img, txt, scale, verbs=verbs, nouns=nouns).backward()
    for t in (img, txt, scale):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="verbs has 4 rows"):
        EgoNCELoss()(img, txt, scale, verbs=verbs[:4], nouns=nouns)


# --------------------------------------------------------------------------- 2 processes on gloo

B, D, WORLD = 3, 8, 2


def global_batch() -> dict[str, torch.Tensor]:
    """Both ranks' rows in rank order: per rank B samples then their B same-video negatives."""
    g = torch.Generator().manual_seed(5)
    n = WORLD * 2 * B
    return {"img": F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=1),
            "txt": F.normalize(torch.randn(n, D, generator=g, dtype=torch.float64), dim=1),
            "verbs": torch.rand(n, V, generator=g) < 0.3, "nouns": torch.rand(n, N, generator=g) < 0.3,
            "keys": torch.randint(0, 6, (n,), generator=g)}


def _rank(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        b = global_batch()
        part = slice(rank * 2 * B, (rank + 1) * 2 * B)
        for local_loss in (False, True):
            img = b["img"][part].clone().requires_grad_(True)
            txt = b["txt"][part].clone().requires_grad_(True)
            fn = EgoNCELoss(local_loss=local_loss, gather_with_grad=local_loss, rank=rank, world_size=WORLD)
            loss = fn(img, txt, torch.tensor(6.0, dtype=torch.float64), verbs=b["verbs"][part],
                      nouns=b["nouns"][part], keys=b["keys"][part])
            loss.backward()
            torch.save({"loss": loss.detach(), "img_grad": img.grad, "txt_grad": txt.grad},
                       f"{out}/{rank}_{local_loss}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # 16-30 s on 2 busy cores: two spawned interpreters importing torch and open_clip
def test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch(tmp_path: os.PathLike) -> None:
    torch.multiprocessing.spawn(_rank, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for local_loss in (False, True):
        check_ranks([torch.load(f"{tmp_path}/{r}_{local_loss}.pt") for r in range(WORLD)], local_loss)


def check_ranks(got: list[dict[str, torch.Tensor]], local_loss: bool) -> None:
    b = global_batch()
    img, txt = b["img"].clone().requires_grad_(True), b["txt"].clone().requires_grad_(True)
    full = EgoNCELoss()(img, txt, torch.tensor(6.0, dtype=torch.float64), verbs=b["verbs"], nouns=b["nouns"],
                        keys=b["keys"])
    full.backward()
    full = full.detach()
    if local_loss:  # each rank's loss covers its own rows; the ranks' mean is the full loss
        assert float(sum(g["loss"] for g in got)) / WORLD == pytest.approx(float(full), rel=1e-10)
        # all_gather with grad sums every rank's gradient into the owner: DDP's mean is the full gradient.
        scale = 1.0 / WORLD
    else:  # every rank computes the whole matrix, its own rows carrying their gradient
        assert all(float(g["loss"]) == pytest.approx(float(full), rel=1e-10) for g in got)
        scale = 1.0
    for r, g in enumerate(got):
        part = slice(r * 2 * B, (r + 1) * 2 * B)
        assert torch.allclose(g["img_grad"] * scale, img.grad[part], rtol=1e-9, atol=1e-12)
        assert torch.allclose(g["txt_grad"] * scale, txt.grad[part], rtol=1e-9, atol=1e-12)
