"""Linear probe on frozen features and few-label selection (§5 linear evaluation).

Two solvers fit the same linear layer: ``lbfgs`` (default), an L2-regularised multinomial
logistic regression (scikit-learn) on all given labels, and ``sgd``, the paper's SGD with
early stopping on a validation split. With a few dozen labels the validation split holds a
handful of curves, so ``sgd`` stops at noisy epochs; ``lbfgs`` is convex, deterministic and
uses every label. Fixes §8.1/§8.3: ``sgd`` early stopping monitors the validation split only,
and evaluation features are computed without augmentation, in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.preprocessing import StandardScaler
from torch.nn import functional as F

from specflow.data.augment import check_augmentation, make_augmentation
from specflow.data.preprocess import minmax
from specflow.models.heads import LinearClassifier

SOLVERS = ("lbfgs", "sgd")


@dataclass
class ProbeConfig:
    """Linear-probe hyper-parameters.

    ``solver="lbfgs"``: logistic regression with inverse L2 strength ``C`` on standardised
    features. ``solver="sgd"`` (the paper's): SGD, momentum 0.9, wd 1e-4, patience 20 on val.
    """

    solver: str = "lbfgs"
    C: float = 10.0
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    max_epochs: int = 1000
    patience: int = 20
    val_fraction: float = 0.2
    standardize: bool = True  # z-score features with the training labels' statistics
    refit: bool = False  # retrain on train+val for the best epoch count (val picks it only)
    augment_copies: int = 20  # nuisance-augmented copies of each labelled curve (0: off)
    augmentation: str = "nuisance"  # specflow.data.augment group applied to the copies
    calibrate: bool = True  # temperature from leave-one-run-out predictions (needs ≥ 2 runs)
    coexistence: int = 0  # synthetic "during" curves per run: mixtures of before/after labels
    seed: int = 0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose from {SOLVERS}")
        check_augmentation(self.augmentation)
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")


@dataclass
class LinearProbe:
    """A trained probe: feature standardisation + linear layer over ``classes``."""

    classifier: LinearClassifier
    mean: np.ndarray
    std: np.ndarray
    classes: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    temperature: float = 1.0  # calibration: probabilities() divides the logits by it

    def logits(self, h: np.ndarray) -> np.ndarray:
        x = torch.as_tensor((h - self.mean) / self.std, dtype=torch.float32)
        with torch.inference_mode():
            return self.classifier.eval()(x).numpy()

    def predict(self, h: np.ndarray) -> np.ndarray:
        """Class labels (original values, e.g. 0/1/2) of features h (N, D)."""
        return self.classes[self.logits(h).argmax(1)]

    def probabilities(self, h: np.ndarray, n_classes: int = 3,
                      calibrated: bool = True) -> np.ndarray:
        """Softmax probabilities (N, n_classes) over phases 0..n_classes−1; a phase the probe
        never saw gets 0. ``calibrated``: logits divided by :attr:`temperature`."""
        logits = self.logits(h) / (self.temperature if calibrated else 1.0)
        p = np.exp(logits - logits.max(1, keepdims=True))
        full = np.zeros((len(h), n_classes), dtype=np.float32)
        full[:, self.classes] = p / p.sum(1, keepdims=True)
        return full


def augmented_copies(x: np.ndarray, config: ProbeConfig) -> np.ndarray:
    """``config.augment_copies`` augmented copies of each curve in ``x`` (N, L), grouped by
    curve (row i's copies are rows i·c … i·c + c − 1), seeded by ``config.seed``."""

    c = config.augment_copies
    if c <= 0 or len(x) == 0:
        return np.zeros((0, *np.shape(x)[1:]), dtype=np.float32)
    g = torch.Generator().manual_seed(config.seed)
    reps = torch.as_tensor(np.asarray(x, dtype=np.float32)).repeat_interleave(c, 0)
    return make_augmentation(config.augmentation)(reps, g).numpy()


def fit_probe(
    h: np.ndarray, y: np.ndarray, x: np.ndarray | None, featurize: Callable | None,
    config: ProbeConfig | None = None, groups: np.ndarray | None = None,
) -> LinearProbe:
    """:func:`train_probe` on labelled features ``h`` plus, when ``config.augment_copies`` > 0,
    the features (``featurize``) of nuisance-augmented copies of their curves ``x``: the
    probe learns that lines from diamonds, gaskets or the medium do not change the phase.

    With ``config.calibrate`` and labels from ≥ 2 runs (``groups``: run of each label), the
    probe's :attr:`~LinearProbe.temperature` is the one that best predicts each run's labels
    from a probe fitted on the other runs (:func:`run_out_temperature`): its probabilities
    are then calibrated for new runs.
    """
    cfg = config or ProbeConfig()
    h, y, x, groups = _with_mixtures(h, y, x, featurize, cfg, groups)
    probe = train_probe(*_with_copies(h, y, x, featurize, cfg), cfg)
    if cfg.calibrate and groups is not None and len(np.unique(groups)) >= 2:
        temper(probe, run_out_temperature(h, y, x, featurize, cfg, np.asarray(groups)))
    return probe


def coexistence_mixtures(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, n: int,
                         seed: int = 0, nearest: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``n`` synthetic two-phase curves per run: (1 − f)·before + f·after, f ~ U(0.15, 0.85),
    from the run's ``nearest`` last "before" (0) and first "after" (2) labelled curves (in the
    given order), min–max scaled; returned with the run of each. Powder patterns of coexisting
    phases add, so these are what "during" looks like even when no "during" curve was
    labelled."""
    rng = np.random.default_rng(seed)
    groups = np.zeros(len(y), int) if groups is None else np.asarray(groups)
    out, runs = [], []
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        before, after = idx[y[idx] == 0][-nearest:], idx[y[idx] == 2][:nearest]
        if not (len(before) and len(after)) or n <= 0:
            continue
        f = rng.uniform(0.15, 0.85, (n, 1)).astype(np.float32)
        mix = (1 - f) * x[rng.choice(before, n)] + f * x[rng.choice(after, n)]
        out.append(minmax(mix))
        runs.append(np.full(n, g))
    if not out:
        return np.zeros((0, x.shape[1]), np.float32), groups[:0]
    return np.concatenate(out), np.concatenate(runs)


def _with_mixtures(h, y, x, featurize, cfg: ProbeConfig, groups):
    if cfg.coexistence <= 0 or x is None or featurize is None:
        return h, y, x, groups
    mix, runs = coexistence_mixtures(np.asarray(x, np.float32), y, groups, cfg.coexistence,
                                     cfg.seed)
    if not len(mix):
        return h, y, x, groups
    h = np.concatenate([np.asarray(h, np.float32), np.asarray(featurize(mix), np.float32)])
    y = np.concatenate([y, np.ones(len(mix), dtype=np.asarray(y).dtype)])
    x = np.concatenate([np.asarray(x, np.float32), mix])
    if groups is not None:  # a mixture belongs to its run
        groups = np.concatenate([groups, runs])
    return h, y, x, groups


def _with_copies(h, y, x, featurize, cfg: ProbeConfig) -> tuple[np.ndarray, np.ndarray]:
    if cfg.augment_copies > 0 and x is not None and featurize is not None and len(y):
        extra = featurize(augmented_copies(x, cfg))
        h = np.concatenate([np.asarray(h, dtype=np.float32), np.asarray(extra, np.float32)])
        y = np.concatenate([y, np.repeat(y, cfg.augment_copies)])
    return h, y


TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 61))


def run_out_temperature(
    h: np.ndarray, y: np.ndarray, x: np.ndarray | None, featurize: Callable | None,
    config: ProbeConfig, groups: np.ndarray,
) -> float:
    """Softmax temperature minimising the negative log-likelihood of each run's labels under
    a probe fitted on the other runs' labels (1.0 when no run can be held out)."""
    logits, target = [], []
    if len(np.unique(groups)) < 2:
        return 1.0
    for _, held in LeaveOneGroupOut().split(h, y, groups):
        out = np.zeros(len(y), bool)
        out[held] = True
        if len(np.unique(y[~out])) < 2:
            continue
        xs = None if x is None else x[~out]
        probe = train_probe(*_with_copies(h[~out], y[~out], xs, featurize, config), config)
        seen = np.isin(y[out], probe.classes)
        if seen.any():
            z = probe.logits(h[out][seen])  # columns: probe.classes; pad to 3 classes
            logits.append(np.pad(z, ((0, 0), (0, 3 - z.shape[1])), constant_values=-np.inf))
            target.append(np.searchsorted(probe.classes, y[out][seen]))
    if not logits:
        return 1.0
    z, t = np.concatenate(logits), np.concatenate(target)
    best, best_nll = 1.0, np.inf
    for temp in TEMPERATURES:
        a = z / temp
        a = a - a.max(1, keepdims=True)
        nll = float(np.mean(np.log(np.exp(a).sum(1)) - a[np.arange(len(t)), t]))
        if nll < best_nll:
            best, best_nll = float(temp), nll
    return best


def temper(probe: LinearProbe, temperature: float) -> LinearProbe:
    """Set the probe's calibration temperature (in place)."""
    probe.temperature = float(temperature)
    return probe


def split_train_val(
    labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices; a class keeps ≥ 1 training curve, val gets the rest.

    Not scikit-learn's ``train_test_split(stratify=...)``: with a few labels a class often
    has one curve, which it refuses; here that curve trains and the class has no val curve.
    """
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(int(round(val_fraction * len(idx))), len(idx) - 1)
        val += list(idx[:n_val])
        train += list(idx[n_val:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(val, dtype=int))


def train_probe(
    h: np.ndarray, y: np.ndarray, config: ProbeConfig | None = None,
    sample_weight: np.ndarray | None = None,
) -> LinearProbe:
    """Fit a linear classifier on features h (N, D) with labels y (``sample_weight``: per
    row, ``lbfgs`` only).

    ``lbfgs``: logistic regression on all of (h, y). ``sgd``: full-batch SGD; the val split
    (never the test curves) picks the best epoch (accuracy, then loss) with patience
    ``patience``; with ``refit`` the probe is then retrained on train+val for that many
    epochs. Without a val split (too few labels) it trains ``max_epochs // 4``.
    """
    cfg = config or ProbeConfig()
    classes = np.unique(y)
    if cfg.solver == "lbfgs":
        return _fit_logistic(h, y, classes, cfg, sample_weight)
    if cfg.solver != "sgd":
        raise ValueError(f"unknown probe solver {cfg.solver!r}; use 'lbfgs' or 'sgd'")
    target = torch.as_tensor(np.searchsorted(classes, y), dtype=torch.long)
    tr, va = split_train_val(y, cfg.val_fraction, cfg.seed)
    clf, mean, std, history, best_epoch = _fit(h, target, tr, va, len(classes), cfg,
                                               cfg.max_epochs if len(va) else cfg.max_epochs // 4)
    if cfg.refit and len(va):
        everything = np.arange(len(y))
        clf, mean, std, _, _ = _fit(h, target, everything, everything[:0], len(classes), cfg,
                                    best_epoch + 1)
    return LinearProbe(clf.eval(), mean, std, classes, history)


def _moments(h: np.ndarray, cfg: ProbeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and scale for z-scoring (scikit-learn's StandardScaler; zeros and ones
    without ``standardize``). Kept as arrays: the bundle stores them for the predictor."""
    if not cfg.standardize:
        return np.zeros(h.shape[1]), np.ones(h.shape[1])
    scaler = StandardScaler().fit(h)
    return scaler.mean_, scaler.scale_


def _fit_logistic(h: np.ndarray, y: np.ndarray, classes: np.ndarray,
                  cfg: ProbeConfig, sample_weight: np.ndarray | None = None) -> LinearProbe:
    """scikit-learn logistic regression, copied into the probe's linear layer."""
    mean, std = _moments(h, cfg)
    clf = LinearClassifier(h.shape[1], len(classes))
    weight, bias = np.zeros((len(classes), h.shape[1])), np.zeros(len(classes))
    if len(classes) > 1:
        lr = LogisticRegression(C=cfg.C, max_iter=10_000).fit((h - mean) / std, y,
                                                               sample_weight=sample_weight)
        weight, bias = lr.coef_, lr.intercept_
        if len(classes) == 2:  # one decision function -> two logits with the same softmax
            weight, bias = np.concatenate([-weight, weight]) / 2, np.array([-bias[0], bias[0]]) / 2
    with torch.no_grad():
        clf.linear.weight.copy_(torch.as_tensor(weight))
        clf.linear.bias.copy_(torch.as_tensor(bias))
    return LinearProbe(clf.eval(), mean, std, classes, [])


def _fit(
    h: np.ndarray, target: torch.Tensor, tr: np.ndarray, va: np.ndarray, n_classes: int,
    cfg: ProbeConfig, epochs: int,
) -> tuple[LinearClassifier, np.ndarray, np.ndarray, list[dict[str, float]], int]:
    """Full-batch SGD on rows ``tr``; with ``va`` keep the best val epoch (accuracy, then loss)."""
    mean, std = _moments(h[tr], cfg)
    x = torch.as_tensor((h - mean) / std, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):  # seeded init; the global state is left alone
        torch.manual_seed(cfg.seed)
        clf = LinearClassifier(h.shape[1], n_classes)
    opt = torch.optim.SGD(clf.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, bad, history = (-1.0, np.inf), None, epochs - 1, 0, []
    for epoch in range(epochs):
        clf.train()
        loss = F.cross_entropy(clf(x[tr]), target[tr])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if not len(va):
            continue
        with torch.no_grad():
            logits = clf.eval()(x[va])
            val_loss = float(F.cross_entropy(logits, target[va]))
            val_acc = float((logits.argmax(1) == target[va]).float().mean())
        history.append({"epoch": epoch, "train_loss": loss.item(), "val_loss": val_loss,
                        "val_acc": val_acc})
        if (val_acc, -val_loss) > (best[0], -best[1]):
            best, best_epoch, bad = (val_acc, val_loss), epoch, 0
            best_state = {k: v.clone() for k, v in clf.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        clf.load_state_dict(best_state)
    return clf, mean, std, history, best_epoch


def select_labels(
    labels: np.ndarray,
    fraction: float | None = 0.03,
    n: int | None = None,
    order: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Indices of the few curves whose labels are revealed.

    Stratified by class (≥ 1 per class present, counts proportional to class size), spread
    evenly through acquisition ``order`` within each class (a seeded offset jitters the
    positions). Curves with label < 0 are never chosen.
    """
    labels = np.asarray(labels)
    known = np.flatnonzero(labels >= 0)
    classes = np.unique(labels[known])
    total = n if n is not None else int(round((fraction or 0.0) * len(known)))
    total = max(total, len(classes))
    order = np.arange(len(labels)) if order is None else np.asarray(order)
    rng = np.random.default_rng(seed)
    counts = {c: max(1, int(round(total * np.mean(labels[known] == c)))) for c in classes}
    chosen = []
    for c in classes:
        idx = known[labels[known] == c]
        idx = idx[np.argsort(order[idx], kind="stable")]
        k = min(counts[c], len(idx))
        pos = (np.arange(k) + rng.uniform(0.25, 0.75)) * len(idx) / k
        chosen += list(idx[np.minimum(pos.astype(int), len(idx) - 1)])
    return np.sort(np.unique(chosen))


def margins(probabilities: np.ndarray) -> np.ndarray:
    """Per row, the probability of the most probable class minus that of the runner-up."""
    p = np.sort(np.asarray(probabilities, dtype=float), axis=1)
    return p[:, -1] - p[:, -2] if p.shape[1] > 1 else np.zeros(len(p))


def smallest_margin(
    probabilities: np.ndarray, exclude: np.ndarray | None = None, n: int = 1
) -> np.ndarray:
    """Indices of the ``n`` rows with the smallest :func:`margins` (most uncertain first),
    skipping ``exclude``."""
    margin = margins(probabilities)
    if exclude is not None:
        margin[np.asarray(exclude, dtype=int)] = np.inf
    order = np.argsort(margin, kind="stable")
    return order[: min(n, int(np.isfinite(margin).sum()))]


def uncertain_curves(
    probe: LinearProbe, h: np.ndarray, exclude: np.ndarray | None = None, n: int = 1
) -> np.ndarray:
    """The ``n`` curves the probe is least sure of (:func:`smallest_margin`), skipping
    ``exclude``: what a scientist should label next."""
    probabilities = torch.softmax(torch.as_tensor(probe.logits(h)), 1).numpy()
    return smallest_margin(probabilities, exclude, n)


def active_labels(
    h: np.ndarray,
    labels: np.ndarray,
    initial: np.ndarray,
    budget: int,
    config: ProbeConfig | None = None,
) -> np.ndarray:
    """Label-suggestion loop (uncertainty sampling) with ``labels`` as the oracle.

    Starting from the ``initial`` labelled indices, fit the probe, reveal the label of the
    curve it is least sure of (:func:`uncertain_curves`; curves with label < 0 cannot be
    answered and are skipped), refit, until ``budget`` labels are known. This is what a
    scientist does when labelling the curves specflow suggests, one at a time.
    """
    labels = np.asarray(labels)
    chosen = [int(i) for i in np.unique(initial)]
    unanswerable = np.flatnonzero(labels < 0)
    while len(chosen) < budget:
        probe = train_probe(h[chosen], labels[chosen], config)
        nxt = uncertain_curves(probe, h, np.concatenate([chosen, unanswerable]).astype(int))
        if not len(nxt):
            break
        chosen.append(int(nxt[0]))
    return np.sort(np.array(chosen, dtype=int))


def suggest_labels(
    h: np.ndarray, n_clusters: int = 6, n_boundary: int = 4, seed: int = 0
) -> list[tuple[int, str]]:
    """Curves a scientist should label first: ``(index, reason)``.

    k-means on standardised embeddings; the curve nearest each centroid ("central"), then the
    curves with the smallest margin between their two nearest centroids ("boundary").
    """
    z = StandardScaler().fit_transform(h)
    km = KMeans(n_clusters=min(n_clusters, len(z)), n_init=10, random_state=seed).fit(z)
    d = km.transform(z)
    out: list[tuple[int, str]] = []
    for k in range(d.shape[1]):
        out.append((int(d[:, k].argmin()), f"central (cluster {k})"))
    if d.shape[1] > 1:
        two = np.sort(d, axis=1)
        margin = two[:, 1] - two[:, 0]
        seen = {i for i, _ in out}
        for i in np.argsort(margin):
            if len(out) >= d.shape[1] + n_boundary:
                break
            if int(i) not in seen:
                out.append((int(i), "boundary"))
                seen.add(int(i))
    return out
