"""Fitting, in one place: curves → features (an encoder, or the curves) → a head, and the
deployable bundle of the result. :class:`~specflow.learn.classifier.PhaseClassifier` calls
these; the evaluation protocols and the MLflow pipeline fit through the classifier.

* :func:`features` — the curves, a control encoder, or one pretrained self-supervised;
* :func:`fit_linear` — the linear probe on a few labels;
* :func:`fit_network` — an end-to-end network on a few labels;
* :func:`corpus_network_bundle` — a network trained on a simulated corpus, its head adapted
  to the labels given (if any);
* :func:`corpus_head` — a linear head on a corpus's features and the labels given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy import optimize
from sklearn.model_selection import LeaveOneGroupOut

from specflow.data.preprocess import Preprocessing
from specflow.learn import controls
from specflow.learn.data import Curves
from specflow.learn.decode import DecoderConfig
from specflow.learn.devices import resolve_device
from specflow.learn.names import SSL_METHODS
from specflow.learn.predictor import build_bundle, build_network_bundle
from specflow.learn.pretrain import EpochCallback, PretrainConfig, encode, pretrain
from specflow.learn.probe import LinearProbe, ProbeConfig, fit_probe, train_probe
from specflow.learn.supervised import (
    SupervisedConfig,
    TrainedNetwork,
    network_outputs,
    run_sequences,
    train_network,
)
from specflow.simulator.corpus import Corpus

CORPUS_SAMPLE = 6000  # corpus curves a head is fitted on (and the OOD reference holds)
CORPUS_HEAD_C = 1.0  # inverse L2 strength of a head fitted on a corpus
CORPUS_LABEL_WEIGHT = 0.25  # share of a corpus head's training weight the hand labels carry


def default_config(method: str, epochs: int | None, seed: int, device: str,
                   preset: str | None = None) -> PretrainConfig:
    """``preset`` ("quick" or "paper"), by default paper on CUDA and quick on CPU;
    ``epochs`` overrides the preset's (and shortens its warm-up to a tenth)."""
    if preset not in (None, "quick", "paper"):
        raise ValueError(f"unknown preset {preset!r}; use 'quick' or 'paper'")
    name = preset or ("paper" if resolve_device(device).type == "cuda" else "quick")
    make = PretrainConfig.paper if name == "paper" else PretrainConfig.quick
    cfg = make(method=method, seed=seed, device=device)
    if epochs is not None:
        cfg.epochs = epochs
        cfg.warmup_epochs = min(cfg.warmup_epochs, max(epochs // 10, 0))
    return cfg






@dataclass
class Features:
    """Features of the training and test curves from one encoder (``None``: the curves)."""

    train: np.ndarray
    test: np.ndarray | None
    encoder: Any
    seconds: float = 0.0

    def featurizer(self, device: str = "auto"):
        """Curves -> features with this encoder (identity without one)."""
        if self.encoder is None:
            return lambda x: np.asarray(x, dtype=np.float32)
        return lambda x: encode(self.encoder, x, device=device)


def features(
    method: str, train: Curves, test: Curves | None, datasets: list[xr.Dataset],
    config: PretrainConfig | None, seed: int, device: str,
    on_epoch: EpochCallback | None = None,
    encoder: Any = None,
) -> Features:
    """Pretrain (SSL methods, on ``datasets`` only) or take a control encoder, then encode;
    an ``encoder`` already pretrained is encoded with as it is."""
    t0 = time.perf_counter()
    if method == "raw":
        return Features(train.x, None if test is None else test.x, None)
    if encoder is None and method in SSL_METHODS:
        encoder = pretrain(datasets, config, on_epoch=on_epoch).encoder
    elif encoder is None:
        encoder = controls.control_encoder(method, seed)
    seconds = time.perf_counter() - t0
    h_test = None if test is None else encode(encoder, test.x, device=device)
    return Features(encode(encoder, train.x, device=device), h_test, encoder, seconds)


@dataclass
class Fitted:
    """One method fitted on the labels: its (calibrated) probabilities of the training and
    test curves, and how to make the deployable bundle."""

    prob_train: np.ndarray
    prob_test: np.ndarray | None
    temperature: float
    bundle: Any  # (train curves, preprocessing, decoder) -> bundle
    features: np.ndarray | None = None  # of the training curves (OOD reference, figures)
    pretrain_seconds: float = 0.0
    train_seconds: float = 0.0


def fit_linear(feats: Features, train: Curves, labelled: np.ndarray, probe: ProbeConfig,
               device: str) -> Fitted:
    """The linear probe on ``feats`` with the labels of the ``labelled`` curves."""
    t0 = time.perf_counter()
    fitted = fit_probe(feats.train[labelled], train.label[labelled], train.x[labelled],
                       feats.featurizer(device), probe, groups=train.run[labelled])
    seconds = time.perf_counter() - t0
    return Fitted(
        fitted.probabilities(feats.train),
        None if feats.test is None else fitted.probabilities(feats.test),
        fitted.temperature,
        lambda curves, prep, decoder: build_bundle(feats.encoder, fitted, curves.grid,
                                                   feats.train, prep, decoder,
                                                   groups=curves.run),
        feats.train, feats.seconds, seconds)


def fit_network(method: str, train: Curves, test: Curves | None, labelled: np.ndarray,
                config: SupervisedConfig | None, seed: int, device: str) -> Fitted:
    """An end-to-end supervised network trained on the labels of the ``labelled`` curves
    (no calibration: temperature 1); sequence models read each run in acquisition order.
    ``seed`` and ``device`` override ``config``'s."""
    cfg = replace(config or SupervisedConfig(), arch=method, seed=seed, device=device)
    trained = train_network(train, labelled, cfg)
    prob_train, h_train = network_outputs(trained.network, train.x, run_sequences(train),
                                          device=device)
    prob_test = (None if test is None else
                 network_outputs(trained.network, test.x, run_sequences(test), device=device)[0])
    return Fitted(prob_train, prob_test, 1.0,
                  lambda curves, prep, decoder: build_network_bundle(
                      trained, curves.grid, h_train, prep, decoder, groups=curves.run),
                  h_train, 0.0, trained.seconds)


# --- corpus models ------------------------------------------------------------------------


def corpus_sample(corpus: Corpus, n: int = CORPUS_SAMPLE, seed: int = 0) -> np.ndarray:
    """Indices of a random sample of up to ``n`` corpus curves (seeded), sorted."""
    if len(corpus) <= n:
        return np.arange(len(corpus))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(corpus), n, replace=False))


def weighted_probe(h_corpus: np.ndarray, y_corpus: np.ndarray, h_labels: np.ndarray,
                   y_labels: np.ndarray, label_weight: float, config: ProbeConfig
                   ) -> LinearProbe:
    """A logistic head on corpus features and hand-labelled features together, the hand
    labels carrying ``label_weight`` of the total weight (weights average 1 per row)."""
    n_c, n_u = len(h_corpus), len(h_labels)
    h = np.concatenate([h_corpus, h_labels]) if n_u else h_corpus
    y = np.concatenate([y_corpus, y_labels]) if n_u else y_corpus
    weight = np.full(n_c, 1.0)
    if n_u and label_weight > 0:
        total = n_c + n_u
        weight = np.r_[np.full(n_c, (1 - label_weight) * total / n_c),
                       np.full(n_u, label_weight * total / n_u)]
    elif n_u:
        weight = np.r_[weight, np.zeros(n_u)]
    cfg = replace(config, C=CORPUS_HEAD_C, augment_copies=0, calibrate=False)
    return train_probe(np.asarray(h, np.float32), np.asarray(y, np.int64), cfg,
                       sample_weight=weight)


def corpus_network_bundle(
    trained: TrainedNetwork, curves: Curves, known: np.ndarray, adapt: bool,
    preprocessing: Preprocessing, decoder: DecoderConfig | None, device: str,
) -> dict[str, Any]:
    """The bundle of a network trained on a corpus. With ``adapt`` and labelled curves
    among ``curves``, its log-probabilities are recalibrated to those labels
    (:func:`recalibration`: per-class scale and bias, pulled towards the network's own
    output). The OOD reference is the features of ``curves`` (the runs it was fitted on)."""
    probs, h = network_outputs(trained.network, curves.x, run_sequences(curves),
                               device=device)  # sequence networks read each run on its own
    bundle = build_network_bundle(trained, curves.grid, h, preprocessing, decoder,
                                  groups=curves.run)
    if adapt and known.size:
        scale, bias = recalibration(np.log(np.clip(probs[known], 1e-6, None)),
                                    curves.label[known], curves.run[known])
        bundle["logit_scale"] = torch.as_tensor(scale, dtype=torch.float32)
        bundle["logit_bias"] = torch.as_tensor(bias, dtype=torch.float32)
    return bundle


RECALIBRATION_STRENGTHS = (0.03, 0.3, 3.0)


def recalibration(logp: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None,
                  strength: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class scale ``a`` and bias ``b`` so that softmax(a·log p + b) fits the labels
    ``y``, with an L2 pull of ``strength`` towards a = 1, b = 0 (the network as trained).
    ``strength`` defaults to the one of :data:`RECALIBRATION_STRENGTHS` that best predicts
    each run's labels from the other runs' (with ≥ 2 labelled runs; else the middle one)."""
    logp, y = np.asarray(logp, dtype=np.float64), np.asarray(y, dtype=int)
    if strength is None:
        strength = RECALIBRATION_STRENGTHS[len(RECALIBRATION_STRENGTHS) // 2]
        if groups is not None and len(np.unique(groups)) >= 2:
            folds = list(LeaveOneGroupOut().split(logp, y, groups))
            losses = []
            for s in RECALIBRATION_STRENGTHS:
                nll = 0.0
                for train, held in folds:
                    a, b = recalibration(logp[train], y[train], strength=s)
                    nll += _nll(a, b, logp[held], y[held]) * len(held)
                losses.append(nll)
            strength = RECALIBRATION_STRENGTHS[int(np.argmin(losses))]
    k = logp.shape[1]

    def objective(theta: np.ndarray) -> float:
        a, b = theta[:k], theta[k:]
        return _nll(a, b, logp, y) + strength * (np.sum((a - 1) ** 2) + np.sum(b**2))

    theta = optimize.minimize(objective, np.r_[np.ones(k), np.zeros(k)], method="L-BFGS-B").x
    return theta[:k], theta[k:]


def _nll(a: np.ndarray, b: np.ndarray, logp: np.ndarray, y: np.ndarray) -> float:
    z = logp * a + b
    z = z - z.max(1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(len(y)), y]))


def corpus_head(
    feats: Features, corpus: Corpus, curves: Curves, known: np.ndarray, probe: ProbeConfig,
    preprocessing: Preprocessing, decoder: DecoderConfig | None, device: str,
    label_weight: float = CORPUS_LABEL_WEIGHT,
) -> dict[str, Any]:
    """The bundle of a linear head on ``feats``' encoder over ``corpus`` curves and the
    ``known`` curves of ``curves`` (carrying ``label_weight`` of the weight)."""
    sub = corpus_sample(corpus, seed=probe.seed)
    h_corpus = np.asarray(feats.featurizer(device)(corpus.x[sub]), np.float32)
    head = weighted_probe(h_corpus, corpus.label[sub], feats.train[known],
                          curves.label[known], label_weight, probe)
    return build_bundle(feats.encoder, head, corpus.grid, feats.train, preprocessing,
                        decoder, groups=curves.run)
