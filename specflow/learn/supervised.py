"""Training and running the end-to-end supervised models (§6) on few labels.

The loop knows nothing of Tiled or MLflow: curves (:class:`~specflow.learn.data.Curves`) and
the indices of the labelled ones in, a trained network out. It keeps the reference's
optimiser (Adam, lr 2e-3, weight decay 2e-5) but not its schedule of a handful of full-batch
epochs over 31 curves × 51 noisy copies: with a label budget of a few dozen curves it draws
``steps`` mini-batches of labelled curves, half of them with a fresh draw of the nuisance
augmentation (:mod:`specflow.data.augment`, the same group the linear probe's copies use), so
every method sees the same labels and the same kind of copies.

Sequence models (``context`` ``past`` / ``run``) train on windows of ``window`` consecutive
curves of one run, each window holding at least one labelled curve; the unlabelled curves in
it are context only (their loss is masked). At prediction each run is read in acquisition
order, every curve inside its own window of the same width (the network stores it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from specflow.data.augment import check_augmentation, make_augmentation
from specflow.learn.data import Curves
from specflow.learn.devices import check_device, resolve_device
from specflow.learn.pretrain import load_checkpoint
from specflow.models.supervised import ARCHITECTURES, SupervisedNet, build_network

#: Architectures built on the ConvSC encoder, which a pretrained encoder can start
CONVSC_ARCHITECTURES = ("convsc", "convsct")


@dataclass
class SupervisedConfig:
    """Training settings of one supervised model.

    ``steps`` mini-batches of ``batch_size`` labelled curves (sequence models: ``sequences``
    windows of ``window`` curves); ``augmentation`` group applied to each curve with
    probability ``augment_p``; ``arch_kwargs`` go to the network (e.g. ``{"bins": 8}`` for
    ``binned``); ``init``: a pretraining checkpoint (``specflow pretrain``, or the shipped
    encoder) whose encoder starts a ConvSC network's encoder (fine-tuning);
    ``fraction_weight`` > 0: a second, training-only linear head reads the high-phase
    fraction from the network's features (curves that know it: a corpus), its binary
    cross-entropy added with this weight to the labels' loss; the trained network is the
    same shape as without it.
    """

    arch: str = "cnn"
    steps: int = 150
    batch_size: int = 32
    sequences: int = 4
    window: int = 32
    lr: float = 2e-3
    weight_decay: float = 2e-5
    augmentation: str = "nuisance"
    augment_p: float = 0.5
    arch_kwargs: dict[str, int] = field(default_factory=dict)
    balance: bool = False  # batches with as many curves of each class (curve models only)
    init: str | None = None
    schedule: str = "constant"  # learning rate: constant, or "cosine" decay to 0 over the steps
    fraction_weight: float = 0.0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.arch = str(self.arch)
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose from "
                             f"{list(ARCHITECTURES)}")
        check_augmentation(self.augmentation)
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown learning-rate schedule {self.schedule!r}; use "
                             "'constant' or 'cosine'")
        if self.init is not None and self.arch not in CONVSC_ARCHITECTURES:
            raise ValueError(f"init starts a ConvSC encoder; {self.arch!r} has none (use "
                             f"one of {CONVSC_ARCHITECTURES})")
        self.device = check_device(self.device)
        if self.fraction_weight < 0:
            raise ValueError(f"fraction_weight must be ≥ 0, got {self.fraction_weight}")
        if self.fraction_weight and ARCHITECTURES[self.arch].context != "curve":
            raise ValueError(f"the fraction head reads one curve's features; {self.arch!r} "
                             "reads sequences")
        if self.steps < 1 or self.batch_size < 1 or not 0 <= self.augment_p <= 1:
            raise ValueError(f"steps and batch_size must be ≥ 1 and augment_p in [0, 1] "
                             f"(got {self.steps}, {self.batch_size}, {self.augment_p})")


@dataclass
class TrainedNetwork:
    """A trained network with what it took."""

    network: SupervisedNet
    arch: str
    arch_kwargs: dict[str, int]
    history: list[float]
    seconds: float
    n_labels: int


def _augment(x: torch.Tensor, cfg: SupervisedConfig, g: torch.Generator, aug) -> torch.Tensor:
    """A fresh augmentation of each curve with probability ``augment_p`` (rows of x)."""
    if aug is None or cfg.augment_p <= 0:
        return x
    flat = x.reshape(-1, x.shape[-1])
    pick = torch.rand(len(flat), generator=g) < cfg.augment_p
    if pick.any():
        flat = flat.clone()
        flat[pick] = aug(flat[pick], g)
    return flat.reshape(x.shape)


def run_sequences(curves: Curves) -> list[np.ndarray]:
    """Indices of each run's curves in acquisition order."""
    return [np.flatnonzero(curves.run == r)[np.argsort(curves.order[curves.run == r],
                                                      kind="stable")]
            for r in np.unique(curves.run)]


def train_network(curves: Curves, labelled: np.ndarray,
                  config: SupervisedConfig | None = None) -> TrainedNetwork:
    """Train ``config.arch`` on the labels of the ``labelled`` curves (seeded by
    ``config.seed``; torch's global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        return _train(curves, labelled, config or SupervisedConfig())


def _train(curves: Curves, labelled: np.ndarray, cfg: SupervisedConfig) -> TrainedNetwork:

    labelled = np.asarray(labelled, dtype=int)
    if labelled.size == 0:
        raise ValueError("no labelled curves to train on")
    dev = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    kwargs = dict(cfg.arch_kwargs)
    if ARCHITECTURES[cfg.arch].context != "curve":  # predicts in windows of the trained width
        kwargs.setdefault("window", cfg.window)
    net = build_network(cfg.arch, curves.x.shape[1], **kwargs)
    if cfg.init is not None:
        net.encoder.load_state_dict(load_checkpoint(cfg.init).encoder.state_dict())
    net = net.to(dev)
    aug = make_augmentation(cfg.augmentation) if cfg.augmentation != "none" else None
    fraction_head = _fraction_head(net, curves, cfg, dev)
    params = list(net.parameters()) + (list(fraction_head.parameters())
                                       if fraction_head is not None else [])
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
                if cfg.schedule == "cosine" else None)
    x_all = torch.as_tensor(np.asarray(curves.x, dtype=np.float32))
    y_all = np.full(len(curves.x), -1, dtype=np.int64)
    y_all[labelled] = curves.label[labelled]
    y_all = torch.as_tensor(y_all)
    f_all = (torch.as_tensor(np.asarray(curves.fraction, dtype=np.float32))
             if fraction_head is not None else None)
    draw = (_window_sampler(curves, labelled, net.window, cfg.sequences, rng)
            if net.context != "curve" else None)
    history, t0 = [], time.perf_counter()
    net.train()
    if draw is None and cfg.balance:
        draw = _balanced_sampler(curves.label[labelled], labelled, cfg.batch_size, rng)
    for _ in range(cfg.steps):
        idx = (rng.choice(labelled, min(cfg.batch_size, max(len(labelled), 2)))
               if draw is None else draw())
        x = _augment(x_all[idx], cfg, g, aug).to(dev)
        if fraction_head is None:
            loss = net.loss(x, y_all[idx].to(dev))
        else:
            loss = _loss_with_fraction(net, fraction_head, x, y_all[idx].to(dev),
                                       f_all[idx].to(dev), cfg.fraction_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if schedule is not None:
            schedule.step()
        history.append(float(loss.detach()))
    net.eval()
    return TrainedNetwork(net, cfg.arch, kwargs, history,
                          time.perf_counter() - t0, int(labelled.size))


def _fraction_head(net: SupervisedNet, curves: Curves, cfg: SupervisedConfig,
                   dev: torch.device) -> torch.nn.Linear | None:
    """The training-only head reading the high-phase fraction from ``net``'s features
    (None when ``fraction_weight`` is 0)."""
    if not cfg.fraction_weight:
        return None
    if curves.fraction is None:
        raise ValueError("fraction_weight needs curves whose high-phase fraction is known "
                         "(a simulated corpus)")
    return torch.nn.Linear(net.head.in_features, 1).to(dev)  # beside the class head


def _loss_with_fraction(net: SupervisedNet, head: torch.nn.Linear, x: torch.Tensor,
                        y: torch.Tensor, fraction: torch.Tensor, weight: float
                        ) -> torch.Tensor:
    """The labels' cross-entropy plus ``weight`` × the binary cross-entropy of the fraction
    ``head`` reads from the same features."""
    logits, h = net(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             y.reshape(-1), ignore_index=-1)
    read = head(h.reshape(-1, h.shape[-1]))[:, 0]
    return loss + weight * torch.nn.functional.binary_cross_entropy_with_logits(
        read, fraction.reshape(-1))


def _balanced_sampler(labels: np.ndarray, labelled: np.ndarray, batch_size: int,
                      rng: np.random.Generator):
    """A function drawing ``batch_size`` labelled curves, each class equally likely: the
    network then learns no class prior from the training set's proportions."""
    pools = [labelled[labels == c] for c in np.unique(labels)]

    def draw() -> np.ndarray:
        counts = rng.multinomial(batch_size, np.full(len(pools), 1 / len(pools)))
        return np.concatenate([rng.choice(pool, k) for pool, k in zip(pools, counts,
                                                                      strict=True)])

    return draw


def _window_sampler(curves: Curves, labelled: np.ndarray, window: int, n_windows: int,
                    rng: np.random.Generator):
    """A function drawing (sequences, window) index arrays: windows of consecutive curves of
    one run, each around a randomly chosen labelled curve."""
    sequences = run_sequences(curves)
    where = {}  # curve index -> (sequence, position)
    for s, seq in enumerate(sequences):
        for pos, i in enumerate(seq):
            where[int(i)] = (s, pos)
    width = max(1, min(window, min(len(s) for s in sequences)))

    def draw() -> np.ndarray:
        out = []
        for i in rng.choice(labelled, n_windows):
            s, pos = where[int(i)]
            seq = sequences[s]
            lo = int(np.clip(pos - rng.integers(0, width), 0, len(seq) - width))
            out.append(seq[lo : lo + width])
        return np.stack(out)

    return draw


@torch.inference_mode()
def network_outputs(net: SupervisedNet, x: np.ndarray, sequences: list[np.ndarray] | None = None,
                    batch_size: int = 64, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities (N, 3) and features (N, D) of curves ``x``.

    Sequence models read each of ``sequences`` (index arrays in acquisition order; default:
    all curves as one sequence) as one input; others run in batches of ``batch_size``.
    """
    dev = resolve_device(device)
    net = net.eval().to(dev)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    if net.context == "curve":
        parts = [net(xt[i : i + batch_size].to(dev)) for i in range(0, len(xt), batch_size)]
        if not parts:
            return np.zeros((0, 3), np.float32), np.zeros((0, 1), np.float32)
        logits = torch.cat([p[0] for p in parts])
        h = torch.cat([p[1] for p in parts])
        return torch.softmax(logits, 1).cpu().numpy(), h.cpu().numpy()
    sequences = sequences if sequences is not None else [np.arange(len(xt))]
    probs = np.zeros((len(xt), 3), np.float32)
    feats: np.ndarray | None = None
    for seq in sequences:
        logits, h = net(xt[seq].to(dev))
        probs[seq] = torch.softmax(logits, -1).cpu().numpy()
        if feats is None:
            feats = np.zeros((len(xt), h.shape[-1]), np.float32)
        feats[seq] = h.cpu().numpy()
    return probs, feats if feats is not None else np.zeros((0, 1), np.float32)
