"""Learning-rate schedule (§5): linear warm-up per iteration, then cosine per epoch."""

from __future__ import annotations

import math


def cosine_lr(epoch: float, epochs: int, lr: float, min_lr: float) -> float:
    """η_min + (lr - η_min)(1 + cos(π·e/E))/2."""
    return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def learning_rate(
    epoch: int,
    step: int,
    steps_per_epoch: int,
    epochs: int,
    lr: float = 0.15,
    min_lr: float | None = None,
    warmup_epochs: int = 50,
    warmup_from: float = 0.02,
) -> float:
    """lr at iteration ``step`` of 0-based ``epoch``; the cosine floor ``min_lr`` defaults to
    lr · 0.1³ (§4: 1.5e-4 at lr 0.15).

    During the first ``warmup_epochs`` epochs lr rises linearly per iteration from exactly
    ``warmup_from`` towards the cosine value at ``warmup_epochs`` (the reference's off-by-one,
    which started below ``warmup_from`` and warmed up for one extra epoch, is fixed).
    """
    min_lr = lr * 1e-3 if min_lr is None else min_lr
    if epoch < warmup_epochs:
        target = cosine_lr(warmup_epochs, epochs, lr, min_lr)
        frac = (epoch * steps_per_epoch + step) / (warmup_epochs * steps_per_epoch)
        return warmup_from + frac * (target - warmup_from)
    return cosine_lr(epoch, epochs, lr, min_lr)
