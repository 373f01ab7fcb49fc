"""MoCo v2 branch (§3.5): momentum key encoder, ring-buffer queue, InfoNCE."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class MoCo(nn.Module):
    """Momentum contrast on top of a query encoder + projector (both owned by the caller).

    Args:
        encoder, projector: query network; deep-copied into the key network.
        queue_size: number of negative keys (reference: 2·N_train). A true ring buffer.
        momentum: EMA factor m of θ_k ← m·θ_k + (1-m)·θ_q (BN buffers are not averaged).
        temperature: InfoNCE temperature T.
        symmetric: L = CE(q1, k2) + CE(q2, k1) (reference) instead of CE(q1, k2).
        bn_splits: keys are encoded on a shuffled batch in this many chunks with separate BN
            statistics — the one-device equivalent of MoCo's shuffle-BN.
    """

    def __init__(
        self,
        encoder: nn.Module,
        projector: nn.Module,
        queue_size: int = 4096,
        dim: int = 128,
        momentum: float = 0.99,
        temperature: float = 0.1,
        symmetric: bool = True,
        bn_splits: int = 8,
    ) -> None:
        super().__init__()
        self.momentum, self.temperature = momentum, temperature
        self.symmetric, self.bn_splits = symmetric, bn_splits
        self.key_encoder = copy.deepcopy(encoder)
        self.key_projector = copy.deepcopy(projector)
        for p in self.key_parameters():
            p.requires_grad_(False)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    def key_parameters(self) -> list[nn.Parameter]:
        return [*self.key_encoder.parameters(), *self.key_projector.parameters()]

    @torch.no_grad()
    def momentum_update(self, encoder: nn.Module, projector: nn.Module) -> None:
        """θ_k ← m·θ_k + (1-m)·θ_q over parameters (not BN buffers)."""
        q = [*encoder.parameters(), *projector.parameters()]
        torch._foreach_mul_(self.key_parameters(), self.momentum)
        torch._foreach_add_(self.key_parameters(), q, alpha=1.0 - self.momentum)

    @torch.no_grad()
    def keys(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """L2-normalised keys of x, computed on a shuffled batch split into BN chunks."""
        n = x.shape[0]
        perm = torch.randperm(n, generator=generator, device=x.device)
        splits = max(1, min(self.bn_splits, n // 2))
        parts = [self.key_projector(self.key_encoder(c)) for c in x[perm].chunk(splits)]
        k = parts[0].new_empty(n, parts[0].shape[1])
        k[perm] = torch.cat(parts).to(k.dtype)
        return k

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write keys at the pointer with wrap-around (keys beyond the queue size are dropped)."""
        size = self.queue.shape[1]
        keys = keys[-size:].to(self.queue.dtype)
        idx = (self.queue_ptr + torch.arange(keys.shape[0], device=keys.device)) % size
        self.queue[:, idx] = keys.T
        self.queue_ptr[0] = (self.queue_ptr[0] + keys.shape[0]) % size

    def info_nce(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """CE([q·k, q·queue] / T, target 0) and the top-1 accuracy, in float32 under autocast."""
        with torch.autocast(q.device.type, enabled=False):
            q, k = q.float(), k.float()
            logits = torch.cat([(q * k).sum(1, keepdim=True),
                                q @ self.queue.clone().detach()], 1) / self.temperature
        target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target), (logits.argmax(1) == 0).float().mean()

    def forward(
        self, q1: Tensor, q2: Tensor, x1: Tensor, x2: Tensor, generator=None
    ) -> tuple[Tensor, Tensor]:
        """Contrastive loss for queries (q1, q2) of views (x1, x2); updates the queue."""
        k1, k2 = self.keys(x1, generator), self.keys(x2, generator)
        loss, acc = self.info_nce(q1, k2)
        if self.symmetric:
            loss2, acc2 = self.info_nce(q2, k1)
            loss, acc = loss + loss2, (acc + acc2) / 2
        self.enqueue(torch.cat([k1, k2]) if self.symmetric else k2)
        return loss, acc
