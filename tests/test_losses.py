"""Tests of fashion_lib.losses: the "maybe"-weighted cross-entropy against hand-worked values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import fashion_lib.attributes as attributes
from fashion_lib.losses import M, N, Y, maybe_weighted_ce, maybe_weights, plain_ce


def log_probs(*p: float) -> list[float]:
    """Logits whose softmax is ``p`` (p sums to 1)."""
    return [math.log(v) for v in p]


def test_codes_are_the_ones_of_fashion_lib_attributes():
    assert (Y, M, N) == (attributes.Y, attributes.M, attributes.N)
    assert len({Y, M, N}) == 3


def test_loss_equals_hand_computation_with_maybe_labels():
    logits = torch.tensor([log_probs(0.5, 0.25, 0.25), log_probs(0.5, 0.25, 0.25), [0.0, 0.0, 0.0]])
    labels = torch.tensor([[Y, M, N], [M, Y, M], [N, N, Y]])
    # beta = 0.1. Row 0: t = 1, W = (0.9, 0.1, 0): 0.9 ln 2 + 0.1 ln 4 = 1.1 ln 2.
    # Row 1: t = 2, W = (0.1, 0.8, 0.1): 0.1 ln 2 + 0.8 ln 4 + 0.1 ln 4 = 1.9 ln 2.
    # Row 2: t = 0, W = (0, 0, 1), uniform softmax: ln 3.
    # Mean over the 3 samples: (3 ln 2 + ln 3) / 3 = ln(24) / 3.
    loss = maybe_weighted_ce(logits, labels, 0.1)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(math.log(24) / 3, rel=1e-6)


def test_weights_by_hand():
    labels = torch.tensor([[Y, M, N, M], [N, Y, N, N], [M, M, M, Y]])
    w = maybe_weights(labels, 0.2)
    expected = torch.tensor([[0.6, 0.2, 0.0, 0.2], [0.0, 1.0, 0.0, 0.0], [0.2, 0.2, 0.2, 0.4]])
    torch.testing.assert_close(w, expected)


@pytest.mark.parametrize("beta", [0.0, None])
def test_beta_zero_or_none_is_cross_entropy_on_the_y_class(beta):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g)
    y = torch.tensor([0, 3, 4, 1, 1, 2])
    labels = torch.full((6, 5), N)
    labels[torch.arange(6), y] = Y
    labels[0, 1] = labels[2, 3] = labels[2, 0] = M  # m labels get no weight at beta = 0
    torch.testing.assert_close(maybe_weighted_ce(logits, labels, beta), F.cross_entropy(logits, y))
    torch.testing.assert_close(plain_ce(logits, labels), F.cross_entropy(logits, y))


def test_gradients_only_where_weights_are_non_zero():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, generator=g, requires_grad=True)
    labels = torch.tensor([[Y, M, N], [N, N, N], [M, Y, N], [N, N, N]])
    maybe_weighted_ce(logits, labels, 0.1).backward()
    # samples whose weights are all zero get exactly zero gradient
    assert (logits.grad[[1, 3]] == 0).all()
    assert (logits.grad[[0, 2]].abs() > 0).all()
    # d/dz of -sum_j W_j log softmax(z)_j / B is (softmax(z) * sum_j W_j - W) / B
    w = torch.tensor([[0.9, 0.1, 0.0], [0, 0, 0], [0.1, 0.9, 0.0], [0, 0, 0]])
    p = torch.softmax(logits.detach(), 1)
    torch.testing.assert_close(logits.grad, (p * w.sum(1, keepdim=True) - w) / 4)


def test_rejects_beta_that_makes_y_weight_non_positive_naming_largest_t():
    labels = torch.tensor([[Y, M, M, N], [M, M, M, Y], [Y, N, N, N]])
    logits = torch.zeros(3, 4)
    # t = 2 and t = 3 in the batch: beta = 0.3 gives 1 - 3 * 0.3 = 0.1 > 0, fine; beta = 0.34 gives -0.02
    maybe_weighted_ce(logits, labels, 0.3)
    with pytest.raises(ValueError, match=r"beta = 0\.34 .* t = 3 'm' labels \(the largest t in this batch\)"):
        maybe_weighted_ce(logits, labels, 0.34)
    with pytest.raises(ValueError, match=r"beta = 0\.5 .*1 - t \* beta = 0 <= 0.* t = 2 "):
        maybe_weighted_ce(logits[[0, 2]], labels[[0, 2]], 0.5)  # the boundary 1 - t * beta = 0 is rejected too


@pytest.mark.parametrize("beta", [-0.1, math.nan, math.inf, "0.1", True])
def test_rejects_invalid_beta(beta):
    with pytest.raises(ValueError, match="beta must be a finite number >= 0 or None"):
        maybe_weighted_ce(torch.zeros(1, 2), torch.tensor([[Y, N]]), beta)


@pytest.mark.parametrize(
    "logits, labels, match",
    [
        (torch.zeros(2, 3), torch.tensor([[Y, N, N]]), r"labels must be a tensor of the shape of logits \(2, 3\)"),
        (torch.zeros(3), torch.tensor([Y, N, N]), r"logits must be a \(B, C\) float tensor"),
        (torch.zeros(1, 3, dtype=torch.long), torch.tensor([[Y, N, N]]), r"logits must be a \(B, C\) float tensor"),
        (torch.zeros(1, 3), torch.tensor([[2.0, 0.0, 0.0]]), "labels must hold integer codes"),
        (torch.zeros(2, 3), torch.tensor([[Y, N, N], [N, 3, N]]), r"labels\[1, 1\] = 3: expected a code"),
    ],
)
def test_rejects_bad_shapes_and_codes(logits, labels, match):
    with pytest.raises(ValueError, match=match):
        maybe_weighted_ce(logits, labels, 0.1)


def test_empty_batch_gives_zero_that_keeps_the_graph():
    logits = torch.zeros(0, 4, requires_grad=True)
    loss = maybe_weighted_ce(logits, torch.zeros(0, 4, dtype=torch.long), 0.1)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad.shape == (0, 4)


def test_loss_does_not_depend_on_batch_size():
    logits = torch.tensor([log_probs(0.5, 0.25, 0.25)])
    labels = torch.tensor([[Y, M, N]])
    one = maybe_weighted_ce(logits, labels, 0.1)
    many = maybe_weighted_ce(logits.repeat(7, 1), labels.repeat(7, 1), 0.1)
    torch.testing.assert_close(one, many)
    assert one.item() == pytest.approx(1.1 * math.log(2), rel=1e-6)
