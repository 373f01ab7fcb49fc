"""SSL heads (§3): projection, relation heads, external-variable head, probe."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class ProjectionHead(nn.Module):
    """MoCo projection: Linear → ReLU → Linear, then L2 normalisation (z)."""

    def __init__(self, dim: int = 128, hidden: int = 128, out: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.net(h), dim=1)


class _PairHead(nn.Module):
    """Linear(2·dim → hidden) → BN → LeakyReLU(0.01) → Linear(hidden → n_out) on [z_a, z_b]."""

    def __init__(self, dim: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 * dim, hidden), nn.BatchNorm1d(hidden), nn.LeakyReLU(0.01),
            nn.Linear(hidden, n_out),
        )

    def forward(self, za: Tensor, zb: Tensor) -> Tensor:
        return self.net(torch.cat([za, zb], dim=1))


class InterRelationHead(_PairHead):
    """Inter-sample relation: are two views from the same curve? One logit per pair."""

    def __init__(self, dim: int = 128, hidden: int = 64) -> None:
        super().__init__(dim, hidden, 1)

    def forward(self, za: Tensor, zb: Tensor) -> Tensor:
        return super().forward(za, zb).squeeze(1)


class IntraRelationHead(_PairHead):
    """Intra-sample relation: how far apart are two pieces of one curve (C-way logits)."""

    def __init__(self, dim: int = 128, hidden: int = 64, n_classes: int = 5) -> None:
        super().__init__(dim, hidden, n_classes)


class ExternalVariableHead(nn.Module):
    """External-variable ("tmp") head: LeakyReLU → Linear(dim → T) logits."""

    def __init__(self, dim: int = 128, n_bins: int = 5) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LeakyReLU(0.01), nn.Linear(dim, n_bins))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class LinearClassifier(nn.Module):
    """Linear probe on frozen features h; weights N(0, std), bias 0."""

    def __init__(self, dim: int = 128, n_classes: int = 3, std: float = 0.05) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, n_classes)
        nn.init.normal_(self.linear.weight, 0.0, std)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h)
