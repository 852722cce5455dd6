"""Fine-tuning's loss and optimisation (egoindex.finetune.loop): label smoothing and gradient
accumulation change the loss and the step as defined, and the schedule warms up then decays."""

from __future__ import annotations

import math

import pytest
import torch

from egoindex.finetune.loop import classification_loss, optimizer_step, param_groups, warmup_cosine
from egoindex.model.backbones import create_classifier, dummy_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_label_smoothing_is_the_documented_mixture() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    y = torch.tensor([0, 1])
    logp = torch.log_softmax(logits, dim=1)
    nll = -logp[torch.arange(2), y]
    uniform = -logp.mean(dim=1)
    for e in (0.0, 0.1, 0.5):
        want = ((1 - e) * nll + e * uniform).mean()
        assert torch.allclose(classification_loss(logits, y, e), want, atol=1e-6)
    # smoothing raises the loss of a confident right answer and lowers that of a confident wrong one
    sure = torch.tensor([[10.0, -10.0, -10.0]])
    assert classification_loss(sure, torch.tensor([0]), 0.1) > classification_loss(sure, torch.tensor([0]), 0.0)
    assert classification_loss(sure, torch.tensor([1]), 0.1) < classification_loss(sure, torch.tensor([1]), 0.0)


def _pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    a = create_classifier("videomae-tiny", 3, num_frames=4, image_size=32)  # no BatchNorm, no dropout
    b = create_classifier("videomae-tiny", 3, num_frames=4, image_size=32)
    b.load_state_dict(a.state_dict())
    return a, b


def test_accumulation_is_the_step_of_the_whole_batch() -> None:
    a, b = _pair()
    x = dummy_clip(a, 4, seed=3)
    y = torch.tensor([0, 1, 2, 1])
    # SGD with lr 1: the step IS the (clipped) gradient, compared directly (Adam would divide
    # float noise in near-zero gradients by their own size)
    oa, ob = torch.optim.SGD(a.parameters(), lr=1.0), torch.optim.SGD(b.parameters(), lr=1.0)
    la, ra, na = optimizer_step(a, oa, [(x, y)], 0.1, 1.0, torch.device("cpu"))
    lb, rb, nb = optimizer_step(b, ob, [(x[:2], y[:2]), (x[2:], y[2:])], 0.1, 1.0, torch.device("cpu"))
    assert math.isclose(la, lb, rel_tol=1e-5) and (ra, na) == (rb, nb) and na == 4
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, atol=1e-6), name
    # without the division by the number of micro-batches the step would be another one
    a2, b2 = _pair()
    o2 = torch.optim.SGD(b2.parameters(), lr=0.1)
    for xs, ys in ((x[:2], y[:2]), (x[2:], y[2:])):
        classification_loss(b2(xs), ys, 0.1).backward()
    o2.step()
    optimizer_step(a2, torch.optim.SGD(a2.parameters(), lr=0.1), [(x[:2], y[:2]), (x[2:], y[2:])], 0.1, 0.0,
                   torch.device("cpu"))
    assert not torch.allclose(a2.head.weight, b2.head.weight)


def test_no_weight_decay_on_biases_and_norms() -> None:
    a, _ = _pair()
    no_decay, decay = param_groups(a, 0.05)
    assert no_decay["weight_decay"] == 0.0 and all(p.ndim < 2 for p in no_decay["params"])
    assert decay["weight_decay"] == 0.05 and all(p.ndim >= 2 for p in decay["params"])


def test_warmup_then_cosine_to_zero() -> None:
    lrs = [warmup_cosine(s, 1.0, 4, 20) for s in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(x >= y for x, y in zip(lrs[3:], lrs[4:]))  # never rises after the warm-up
    assert lrs[4] == 1.0 and warmup_cosine(20, 1.0, 4, 20) == 0.0
    assert math.isclose(warmup_cosine(12, 1.0, 4, 20), 0.5)  # half way through the decay
