"""The eight end-to-end supervised models of the comparison (§6), for 3 phases.

Each network maps curves to ``(logits, features)``: logits over the phases (before, during,
after) and a compact feature vector the deployed model scores out-of-distribution on. They
differ in what one prediction may look at, their :attr:`context`:

* ``"curve"`` — one curve at a time (CNN, FNN-1D, multi-scale ResNet, ConvSC, binned FCNN):
  input (N, L), output per curve;
* ``"past"`` — the curves acquired just before it (LSTM, unidirectional): trained on
  (S, W, L) batches of S windows of W consecutive curves; on a run (N, L) each curve is read
  at the end of the window of W curves ending at it;
* ``"run"`` — its neighbours on both sides (Transformer, ConvSCT): each curve is read in the
  window of W curves centred on it, attending to curves before and after it.
  **Transductive**: a curve's label depends on the other curves given with it.

Fixes of the reference code (§8): the FNN's N(1.0, 0.02) initialisation and the ResNet's
unused Linear are gone; outputs are 3-way softmax logits instead of one sigmoid; the LSTM
sees sequences both in training and at test time.
"""

from __future__ import annotations

import copy
import math
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from specflow.models.convsc import ConvSCEncoder

Context = Literal["curve", "past", "run"]
N_PHASES = 3


class SupervisedNet(nn.Module):
    """Base: ``forward(x) -> (logits, features)``; :meth:`loss` is per-curve cross-entropy
    (labels < 0 ignored)."""

    context: ClassVar[Context] = "curve"

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        logits, _ = self(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                               ignore_index=-1)


class CNN1D(SupervisedNet):
    """LN → 3 × [Conv, BN, ReLU, MaxPool 2] (64, 64, ``channels`` channels; the first
    convolution with ``stride``) → flatten → LN → Linear. Defaults: stride 2, 4 channels."""

    def __init__(self, length: int, n_classes: int = N_PHASES, stride: int = 2,
                 channels: int = 4) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(length)

        def block(c_in: int, c_out: int, k: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride=stride),
                                 nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(2))

        self.body = nn.Sequential(block(1, 64, 5, stride), block(64, 64, 3, 2),
                                  block(64, channels, 3, 1), nn.Flatten())
        flat = self.body(torch.zeros(2, 1, length)).shape[1]
        self.out_norm = nn.LayerNorm(flat)
        self.head = nn.Linear(flat, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.out_norm(self.body(self.norm(x).unsqueeze(1)))
        return self.head(h), h


class FNN1D(SupervisedNet):
    """LN → Linear 256 → LN → ReLU → Linear 512 → LN → ReLU → Linear 64 → LN → ReLU → Linear."""

    def __init__(self, length: int, n_classes: int = N_PHASES) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.LayerNorm(length)]
        for a, b in ((length, 256), (256, 512), (512, 64)):
            layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(64, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.body(x)
        return self.head(h), h


class _BasicBlock(nn.Module):
    """Two convolutions (kernel k, the first with stride 2) + BN, 1×1-conv+BN shortcut; the
    residual is trimmed to the output length. Padding k // 2 (the reference pads 1 for every
    kernel, which shrinks short grids below the kernel size)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, stride=2, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=2, bias=False),
                                      nn.BatchNorm1d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        res = self.shortcut(x)
        n = min(out.shape[-1], res.shape[-1])
        return F.relu(out[..., :n] + res[..., :n])


class MultiScaleResNet(SupervisedNet):
    """Stem (Conv k7 s2, BN, ReLU, MaxPool k5 s2) → three branches of 3 basic blocks with
    kernels 3 / 5 / 7 (planes 64, 64, 8) → average-pooled to a common length → summed →
    flatten → LN → Linear. The pooled length (111 in the reference at 4023 points) is a
    parameter; the reference's unused Linear 4023→512 is left out."""

    def __init__(self, length: int, n_classes: int = N_PHASES, pooled: int = 111) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(length)
        self.stem = nn.Sequential(nn.Conv1d(1, 64, 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm1d(64), nn.ReLU(),
                                  nn.MaxPool1d(5, stride=2, padding=1))
        self.branches = nn.ModuleList(
            nn.Sequential(_BasicBlock(64, 64, k), _BasicBlock(64, 64, k), _BasicBlock(64, 8, k),
                          nn.AdaptiveAvgPool1d(pooled))
            for k in (3, 5, 7))
        self.out_norm = nn.LayerNorm(8 * pooled)
        self.head = nn.Linear(8 * pooled, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.stem(self.norm(x).unsqueeze(1))
        h = self.out_norm(sum(branch(s) for branch in self.branches).flatten(1))
        return self.head(h), h


class ConvSCNet(SupervisedNet):
    """The ConvSC-attention encoder (§2) with a linear head, trained end to end."""

    def __init__(self, length: int, n_classes: int = N_PHASES) -> None:
        super().__init__()
        self.encoder = ConvSCEncoder(init="pytorch")
        self.head = nn.Linear(self.encoder.dim, n_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.head(h), h


def sinusoidal_positions(n: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(n, dim) sine/cosine position codes of "Attention is all you need"."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32)
                     * (-math.log(10_000.0) / dim))
    out = torch.zeros(n, dim, device=device)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return out


def window_index(n: int, width: int, causal: bool) -> tuple[Tensor, Tensor]:
    """For each of ``n`` curves, the ``width`` consecutive curves it is read with, (n, width)
    indices, and its position in them (n,): the window ending at it when ``causal`` (the
    first ``width`` curves share the first window), else the window centred on it (shifted
    inside the run at its ends). A run shorter than ``width`` is one window."""
    width = min(width, n)
    i = torch.arange(n)
    start = (i - width + 1) if causal else (i - width // 2)
    start = start.clamp(0, n - width)
    return start[:, None] + torch.arange(width), i - start


class _SequenceNet(SupervisedNet):
    """Curves are embedded one by one (:meth:`embed`), then read in context
    (:meth:`contextualize`). Training input (S, W, L): S windows of W consecutive curves.
    One run (N, L): each curve is read inside its own window of :attr:`window` curves
    (:func:`window_index`) — the length the network was trained on, so positions and
    recurrences never run beyond what training saw."""

    context: ClassVar[Context] = "run"
    chunk = 256  # curves whose windows are evaluated together (memory: chunk × window × E)

    def __init__(self, window: int) -> None:
        super().__init__()
        self.window = window

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() == 3:
            s, w, n = x.shape
            h = self.contextualize(self.embed(x.reshape(s * w, n)).reshape(s, w, -1))
            return self.head(h), h
        e = self.embed(x)
        idx, pos = window_index(len(e), self.window, self.context == "past")
        parts = []
        for a in range(0, len(e), self.chunk):
            sl = slice(a, a + self.chunk)
            h = self.contextualize(e[idx[sl].to(e.device)])
            parts.append(h[torch.arange(h.shape[0], device=h.device), pos[sl].to(h.device)])
        h = torch.cat(parts) if parts else e.new_zeros((0, self.head.in_features))
        return self.head(h), h

    def embed(self, x: Tensor) -> Tensor:  # (N, L) -> (N, E), curve by curve
        raise NotImplementedError

    def contextualize(self, e: Tensor) -> Tensor:  # (S, W, E) -> (S, W, D)
        raise NotImplementedError


class LSTMNet(_SequenceNet):
    """LN → Linear L→512 → LN → ReLU → 2-layer LSTM (512) → LN → Linear; one time step per
    curve, unidirectional: a curve's label depends on the curves before it only."""

    context: ClassVar[Context] = "past"

    def __init__(self, length: int, n_classes: int = N_PHASES, hidden: int = 512,
                 window: int = 32) -> None:
        super().__init__(window)
        self.embed_net = nn.Sequential(nn.LayerNorm(length), nn.Linear(length, hidden),
                                       nn.LayerNorm(hidden), nn.ReLU())
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.out_norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, n_classes)
        for m in (self.embed_net[1], self.head):  # the reference's Xavier init, bias 0.01
            nn.init.xavier_uniform_(m.weight)
            nn.init.constant_(m.bias, 0.01)

    def embed(self, x: Tensor) -> Tensor:
        return self.embed_net(x)

    def contextualize(self, e: Tensor) -> Tensor:
        out, _ = self.lstm(e)
        return self.out_norm(out)


class TransformerNet(_SequenceNet):
    """LN → Linear L→256 → LN → ReLU → sinusoidal positions → 2 post-LN encoder layers
    (8 heads, FFN 256, no dropout) → Linear. Tokens are curves: transductive."""

    def __init__(self, length: int, n_classes: int = N_PHASES, dim: int = 256,
                 heads: int = 8, layers: int = 2, window: int = 32) -> None:
        super().__init__(window)
        self.embed_net = nn.Sequential(nn.LayerNorm(length), nn.Linear(length, dim),
                                       nn.LayerNorm(dim), nn.ReLU())
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=dim, dropout=0.0,
                                           batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, n_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.embed_net(x)

    def contextualize(self, e: Tensor) -> Tensor:
        return self.encoder(e + sinusoidal_positions(e.shape[1], e.shape[2], e.device))


class ConvSCTNet(_SequenceNet):
    """ConvSC attention plus temporal self-attention across curves (ConvSCT; the reference
    code is not public, §6): each curve is encoded by the ConvSC encoder (128),
    projected to ``dim`` with sinusoidal positions in acquisition order, and one encoder
    layer (``heads`` heads) lets every curve attend to the others of its window. The
    residual path keeps the curve's own features, so a curve is never described by its
    neighbours alone. Transductive."""

    def __init__(self, length: int, n_classes: int = N_PHASES, dim: int = 64,
                 heads: int = 4, window: int = 32) -> None:
        super().__init__(window)
        self.encoder = ConvSCEncoder(init="pytorch")
        self.project = nn.Sequential(nn.Linear(self.encoder.dim, dim), nn.LayerNorm(dim))
        self.temporal = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim,
                                                   dropout=0.0, batch_first=True)
        self.head = nn.Linear(dim, n_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.project(self.encoder(x))

    def contextualize(self, e: Tensor) -> Tensor:
        return self.temporal(e + sinusoidal_positions(e.shape[1], e.shape[2], e.device))


class BinnedFCNN(SupervisedNet):
    """Binned FCNN with learned weighting (the 2-D segmentation view).

    The curve is cut into ``bins`` equal bins of ``N2 = length // bins`` points (the last
    ``length mod bins`` points are not used). A *sample* is the B-tuple of (position, I) pairs
    at one offset inside every bin (2B inputs); each bin has its own subnet (Linear 2→150 →
    BN → ReLU → Linear 150→2 → BN → sigmoid), and a Linear 2B→3 over the concatenated
    outputs is the learned weighting. Every offset predicts; the curve's probabilities are
    the mean of its N2 point probabilities (a soft vote; the reference took a hard majority
    of binary votes). Parameters: 1062·B + 3.
    """

    def __init__(self, length: int, n_classes: int = N_PHASES, bins: int = 8,
                 hidden: int = 150) -> None:
        super().__init__()
        if not 1 <= bins <= length // 2:
            raise ValueError(f"bins must be in 1 … {length // 2}, got {bins}")
        self.bins, self.width = bins, length // bins
        b = bins
        self.w1 = nn.Parameter(torch.empty(b, 2, hidden))
        self.b1 = nn.Parameter(torch.zeros(b, hidden))
        self.bn1 = nn.BatchNorm1d(b * hidden)
        self.w2 = nn.Parameter(torch.empty(b, hidden, 2))
        self.b2 = nn.Parameter(torch.zeros(b, 2))
        self.bn2 = nn.BatchNorm1d(b * 2)
        for w in (self.w1, self.w2):  # nn.Linear's default, per bin
            bound = 1 / math.sqrt(w.shape[1])
            nn.init.uniform_(w, -bound, bound)
        self.weighting = nn.Linear(2 * b, n_classes)
        self.register_buffer("position", torch.linspace(0, 1, length)[: b * self.width]
                             .reshape(b, self.width).T.contiguous(), persistent=False)

    def samples(self, x: Tensor, offsets: Tensor | None = None) -> Tensor:
        """(N, L) curves -> (N, N2, B, 2) samples: (position, intensity) of offset j in
        every bin (only ``offsets`` when given)."""
        n = x.shape[0]
        inten = x[:, : self.bins * self.width].reshape(n, self.bins, self.width).transpose(1, 2)
        pos = self.position.expand(n, -1, -1)
        out = torch.stack([pos, inten], dim=-1)
        return out if offsets is None else out[:, offsets]

    def point_outputs(self, x: Tensor, offsets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-point logits (N, N2, C) and subnet outputs (N, N2, 2B)."""
        s = self.samples(x, offsets)
        n, m = s.shape[:2]
        a = torch.einsum("pbi,bih->pbh", s.reshape(n * m, self.bins, 2), self.w1) + self.b1
        a = F.relu(self.bn1(a.reshape(n * m, -1))).reshape(n * m, self.bins, -1)
        z = torch.einsum("pbh,bho->pbo", a, self.w2) + self.b2
        z = torch.sigmoid(self.bn2(z.reshape(n * m, -1)))
        return self.weighting(z).reshape(n, m, -1), z.reshape(n, m, -1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, z = self.point_outputs(x)
        p = torch.softmax(logits, -1).mean(1)
        return torch.log(p.clamp_min(1e-8)), z.mean(1)

    def loss(self, x: Tensor, y: Tensor, points: int = 64) -> Tensor:
        """Cross-entropy of each point against its curve's label (the segmentation view), on
        ``points`` random offsets per batch (all of them when fewer)."""
        offsets = (torch.randperm(self.width, device=x.device)[:points]
                   if self.width > points else None)
        logits, _ = self.point_outputs(x, offsets)
        target = y[:, None].expand(-1, logits.shape[1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=-1)


ARCHITECTURES: dict[str, type[SupervisedNet]] = {
    "cnn": CNN1D, "lstm": LSTMNet, "transformer": TransformerNet, "fnn": FNN1D,
    "resnet": MultiScaleResNet, "convsc": ConvSCNet, "convsct": ConvSCTNet, "binned": BinnedFCNN,
}


def build_network(arch: str, length: int, **kwargs: int) -> SupervisedNet:
    """A fresh network of ``arch`` for curves of ``length`` points."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; use one of {tuple(ARCHITECTURES)}")
    return ARCHITECTURES[arch](length, **kwargs)


class _PoolThenReLU(nn.Module):
    """``MaxPool`` then an in-place ReLU: the same numbers as ReLU then ``MaxPool`` (both are
    monotone), with the ReLU on half the values and no array of its own."""

    def __init__(self, pool: nn.MaxPool1d) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp_min_(self.pool(x), 0)


def fold_batch_norms(net: SupervisedNet, pool_first: bool = True) -> SupervisedNet:
    """An inference copy of ``net`` (eval mode) with each BatchNorm that directly follows a
    Conv1d in an ``nn.Sequential`` folded into that convolution's weights (the same outputs
    to float rounding, one pass over the activations fewer: the CNN's BatchNorms cost a
    third of its time on a CPU), and each ReLU followed by a MaxPool swapped for the pool
    then an in-place ReLU (the same numbers, exactly; a pass over half the values and one
    array fewer: on a CPU large fresh arrays cost page faults). ``pool_first=False`` keeps
    the ReLUs where they are (the served copy before that change: benchmarks, tests)."""
    net = copy.deepcopy(net).eval()
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d):
                seq[i] = fuse_conv_bn_eval(conv, bn)
                seq[i + 1] = nn.Identity()
        for i in range(len(seq) - 1):
            relu, pool = seq[i], seq[i + 1]
            if pool_first and isinstance(relu, nn.ReLU) and isinstance(pool, nn.MaxPool1d):
                seq[i], seq[i + 1] = nn.Identity(), _PoolThenReLU(pool)
    return net
