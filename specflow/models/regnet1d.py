"""1-D RegNet encoder (XRDidentifier's ``Net1D``, §7) and its AdaCos head.

Stem: conv k16 s2 ("same"), BN, Swish. Stages of pre-activation blocks (BN → Swish → dropout
→ conv1×1 → grouped conv k → conv1×1, squeeze-excitation r=2); the first block of each stage
downsamples by 2 (max-pool shortcut) and zero-pads the shortcut when channels grow. Global
mean pooling gives the embedding. ``RegNet1D.paper()`` is the original's 30.6 M-parameter
shape; the default is a narrow one that trains in minutes on a CPU.

:class:`AdaCos` fixes the original's dead code: the adaptive scale is computed from the
logits of the **true** labels of each batch (the original never passed the labels, so the
head returned plain cosines).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int, ratio: int = 2) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // ratio)
        self.fc2 = nn.Linear(channels // ratio, channels)

    def forward(self, x: Tensor) -> Tensor:
        s = F.silu(self.fc1(x.mean(-1)))
        return x * torch.sigmoid(self.fc2(s))[..., None]


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dropout: float,
                 group_width: int) -> None:
        super().__init__()
        self.stride, self.c_in, self.c_out = stride, c_in, c_out
        self.bn1 = nn.BatchNorm1d(c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, 1)
        self.bn2 = nn.BatchNorm1d(c_out)
        # "same" for an even kernel: pad (k/2 − 1, k/2) by hand when not downsampling
        self.pad = (0, 0) if stride > 1 else (kernel // 2 - 1, kernel // 2)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, stride=stride,
                               padding=kernel // 2 - 1 if stride > 1 else 0,
                               groups=max(c_out // group_width, 1))
        self.bn3 = nn.BatchNorm1d(c_out)
        self.conv3 = nn.Conv1d(c_out, c_out, 1)
        self.se = _SqueezeExcite(c_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.dropout(F.silu(self.bn1(x))))
        out = self.conv2(F.pad(self.dropout(F.silu(self.bn2(out))), self.pad))
        out = self.se(self.conv3(self.dropout(F.silu(self.bn3(out)))))
        short = F.max_pool1d(x, 2, ceil_mode=True) if self.stride > 1 else x
        short = short[..., : out.shape[-1]]
        if out.shape[-1] > short.shape[-1]:
            out = out[..., : short.shape[-1]]
        if self.c_out > self.c_in:
            short = F.pad(short, (0, 0, 0, self.c_out - self.c_in))
        return out + short


class RegNet1D(nn.Module):
    """Curves (B, L) or (B, 1, L) → embeddings (B, widths[-1])."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 32, 64, 64, 128, 128),
                 depths: tuple[int, ...] = (1, 1, 1, 1, 1, 1, 1), stem: int = 16,
                 kernel: int = 8, dropout: float = 0.1, group_width: int = 16) -> None:
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError("widths and depths need one value per stage")
        self.config = {"widths": tuple(widths), "depths": tuple(depths), "stem": stem,
                       "kernel": kernel, "dropout": dropout, "group_width": group_width}
        self.stem = nn.Conv1d(1, stem, kernel, stride=2, padding=kernel // 2 - 1)
        self.stem_bn = nn.BatchNorm1d(stem)
        blocks: list[nn.Module] = []
        c = stem
        for width, depth in zip(widths, depths, strict=True):
            for j in range(depth):
                blocks.append(_Block(c, width, kernel, 2 if j == 0 else 1, dropout,
                                     group_width))
                c = width
        self.blocks = nn.Sequential(*blocks)
        self.out_bn = nn.BatchNorm1d(c)
        self.dim = c

    @classmethod
    def paper(cls) -> RegNet1D:
        """The original's shape: widths 64…1024, depths 2,2,2,3,3,4,4, kernel 16, dropout 0.5."""
        return cls((64, 160, 160, 400, 400, 1024, 1024), (2, 2, 2, 3, 3, 4, 4), stem=64,
                   kernel=16, dropout=0.5)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x[:, None]
        x = F.silu(self.stem_bn(self.stem(x)))
        x = F.silu(self.out_bn(self.blocks(x)))
        return x.mean(-1)


class AdaCos(nn.Module):
    """Cosine logits with the AdaCos adaptive scale (Zhang et al. 2019).

    ``forward(x)`` returns the cosines (N, C); ``forward(x, labels)`` updates the scale from
    this batch, without gradient, s ← log(B_avg) / cos(min(π/4, θ_med)), where B_avg is the
    mean over the batch of Σ_{j≠y} exp(s·cos θ_j) (a log-sum-exp, so it cannot overflow) and
    θ_med the median angle to the true class, and returns s · cos θ. The scale is kept in
    [1, 100].
    """

    def __init__(self, dim: int, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"AdaCos needs at least 2 classes, got {n_classes}")
        self.weight = nn.Parameter(torch.empty(n_classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.register_buffer("scale", torch.tensor(math.sqrt(2) * math.log(max(n_classes - 1,
                                                                                2))))

    def cosine(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        cos = self.cosine(x)
        if labels is None:
            return cos
        with torch.no_grad():
            theta = torch.acos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
            target = F.one_hot(labels, cos.shape[1]).bool()
            # log B_avg = log(mean over the batch of Σ_{j≠y} e^{s·cos}), without overflow
            others = (self.scale * cos).masked_fill(target, float("-inf"))
            log_b_avg = torch.logsumexp(others.flatten(), 0) - math.log(len(cos))
            theta_med = theta[target].median()
            new = log_b_avg / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
            self.scale.copy_(new.clamp(1.0, 100.0))  # finite even if features collapse
        return self.scale * cos


def cosface_loss(cos: Tensor, labels: Tensor, s: float = 30.0, m: float = 0.4) -> Tensor:
    """CosFace (large-margin cosine) loss on cosines: CE of s·(cos θ − m·[j = y])."""
    margin = F.one_hot(labels, cos.shape[1]).to(cos.dtype) * m
    return F.cross_entropy(s * (cos - margin), labels)
