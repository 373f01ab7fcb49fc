"""Pretext-task losses (§3.2–3.4): inter/intra-sample relations, external variable.

Each function returns ``(loss, accuracy)``; heads are passed in, so the losses stay composable.
``double_softmax=True`` reproduces the reference's Softmax-before-CrossEntropy bug (§3.4) so that
logged loss values can be compared; the default feeds logits to the cross entropy.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def cross_entropy(logits: Tensor, target: Tensor, double_softmax: bool = False) -> Tensor:
    """Cross entropy on logits; optionally on softmax(logits) as in the reference code."""
    return F.cross_entropy(logits.softmax(1) if double_softmax else logits, target)


def accuracy(logits: Tensor, target: Tensor) -> Tensor:
    """Top-1 accuracy (logits (N, C)) or binary accuracy (logits (N,), target 0/1)."""
    pred = (logits > 0).to(target.dtype) if logits.dim() == 1 else logits.argmax(1)
    return (pred == target).float().mean()


def inter_relation_pairs(views: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """SelfTime pairs from K views (B, D): positives z_i[b]–z_j[b], negatives z_i[b]–z_j[b-s].

    The shift s starts at 1, grows by one per view pair and wraps to 1 at B, so it is never 0.
    Returns (za, zb, target) with K(K-1)·B rows, half positive.
    """
    b = views[0].shape[0]
    za, zb, target = [], [], []
    shift = 1
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            za += [views[i], views[i]]
            zb += [views[j], views[j].roll(shift, dims=0)]
            target += [torch.ones(b), torch.zeros(b)]
            shift = shift + 1 if shift + 1 < b else 1
    dev = views[0].device
    return torch.cat(za), torch.cat(zb), torch.cat(target).to(dev)


def inter_relation_loss(head: nn.Module, views: list[Tensor]) -> tuple[Tensor, Tensor]:
    """BCE-with-logits of the inter-sample relation head over all view pairs."""
    za, zb, target = inter_relation_pairs(views)
    logits = head(za, zb).float()
    return F.binary_cross_entropy_with_logits(logits, target), accuracy(logits, target.long())


def intra_pieces(
    x: Tensor, piece_ratio: float, n_classes: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Cut two pieces of w = ⌊p·L⌋ points (or p points if p ≥ 1) from each curve (N, L).

    Starts s1, s2 ~ U{0 … L-w-1}; class = min(⌊|s1-s2| / (L / 2C)⌋, C-1).
    Returns (piece0, piece1, target) with pieces (N, w).
    """
    n, length = x.shape
    w = int(piece_ratio) if piece_ratio >= 1 else int(piece_ratio * length)
    if not 2 <= w < length:
        raise ValueError(f"piece length {w} must lie in [2, {length})")
    starts = (torch.rand((2, n), generator=generator, device=x.device) * (length - w)).long()
    steps = torch.arange(w, device=x.device)
    p0 = x.gather(1, starts[0][:, None] + steps)
    p1 = x.gather(1, starts[1][:, None] + steps)
    dist = (starts[0] - starts[1]).abs().float()
    target = (dist / (length / (2 * n_classes))).floor().long().clamp(max=n_classes - 1)
    return p0, p1, target


def intra_relation_loss(
    head: nn.Module, z0: Tensor, z1: Tensor, target: Tensor, double_softmax: bool = False
) -> tuple[Tensor, Tensor]:
    """Cross entropy of the intra-sample relation head on piece projections (z0, z1)."""
    logits = head(z0, z1).float()
    return cross_entropy(logits, target, double_softmax), accuracy(logits, target)


def external_variable_loss(
    head: nn.Module, z: Tensor, target: Tensor, double_softmax: bool = False
) -> tuple[Tensor, Tensor]:
    """Cross entropy of the external-variable head (T bins of acquisition order or pressure)."""
    logits = head(z).float()
    return cross_entropy(logits, target, double_softmax), accuracy(logits, target)
