"""The evaluation protocols: what a promoted model would score on tomorrow's run.

* **within-run** (the paper's): pretrain on the runs (labels hidden), reveal a few labels inside
  each run, score the other curves of the same runs;
* **cross-run**: pretrain and probe on the ``data`` runs only; score whole ``test`` runs the
  model never saw, not even unlabelled.

Every score is computed on what the deployed model outputs: per-curve probabilities decoded
along each run (:func:`specflow.learn.decode.decode`); ``per_curve`` keeps the undecoded
argmax for comparison. Labels are picked without class information by default (``even``:
evenly spaced in acquisition order). With ``baselines`` the same labels feed the controls of
:mod:`specflow.learn.controls`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from specflow.data.io import read_spectra
from specflow.data.preprocess import Preprocessing
from specflow.learn import controls
from specflow.learn.data import Curves, to_curves
from specflow.learn.decode import DecoderConfig, decode, transition_pressures
from specflow.learn.devices import resolve_device
from specflow.learn.metrics import (
    ambiguity_width,
    classification_report,
    expected_calibration_error,
)
from specflow.learn.names import (
    DEFAULT_METHOD,
    LABEL_STRATEGIES,
    METHOD_NAMES,
    METHODS,
    SSL_METHODS,
    SUPERVISED_METHODS,
)
from specflow.learn.predictor import build_bundle, build_network_bundle
from specflow.learn.pretrain import EpochCallback, PretrainConfig, encode, pretrain
from specflow.learn.probe import (
    ProbeConfig,
    active_labels,
    fit_probe,
    select_labels,
)
from specflow.learn.supervised import (
    SupervisedConfig,
    network_outputs,
    run_sequences,
    train_network,
)


def read_dataset(path: Path) -> xr.Dataset:
    """Read a spectra file with specflow's io module."""

    return read_spectra(path)


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


# --- which curves get labels ---------------------------------------------------------------


def even_labels(order: np.ndarray, labelled: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """``k`` curves evenly spaced in acquisition ``order`` among the ``labelled`` ones (a
    seeded offset jitters the positions); no class information is used."""
    idx = np.flatnonzero(labelled)
    idx = idx[np.argsort(order[idx], kind="stable")]
    k = min(max(k, 1), len(idx))
    if k == 0:
        return idx
    pos = (np.arange(k) + np.random.default_rng(seed).uniform(0.25, 0.75)) * len(idx) / k
    return np.unique(idx[np.minimum(pos.astype(int), len(idx) - 1)])


def pick_probe_labels(
    curves: Curves,
    label_fraction: float,
    seed: int = 0,
    strategy: str = "even",
    h: np.ndarray | None = None,
    probe: ProbeConfig | None = None,
) -> np.ndarray:
    """Indices of the curves whose labels the probe sees: ``label_fraction`` of each run.

    ``even``: evenly spaced in acquisition order, blind to the classes (what a scientist can
    do before knowing where the transition is); ``stratified``: per class, ≥ 1 each, spread
    (uses the classes: an optimistic reference, the paper's protocol); ``suggest``: half the
    budget ``even``, the rest one at a time where the probe on ``h`` is least sure
    (:func:`~specflow.learn.probe.active_labels`), as when a scientist labels the curves
    specflow suggests.
    """
    if strategy not in LABEL_STRATEGIES:
        raise ValueError(f"unknown label strategy {strategy!r}; use one of {LABEL_STRATEGIES}")
    if not 0 < label_fraction <= 1:
        raise ValueError(f"label_fraction must be in (0, 1], got {label_fraction}")
    chosen, initial, budget = [], [], 0
    for r in np.unique(curves.run):
        idx = np.flatnonzero(curves.run == r)
        lab = curves.label[idx]
        if not (lab >= 0).any():
            continue
        k = max(1, int(round(label_fraction * (lab >= 0).sum())))
        budget += k
        if strategy == "stratified":
            chosen.append(idx[select_labels(lab, label_fraction, order=curves.order[idx],
                                            seed=seed)])
        elif strategy == "even":
            chosen.append(idx[even_labels(curves.order[idx], lab >= 0, k, seed)])
        else:
            initial.append(idx[even_labels(curves.order[idx], lab >= 0, (k + 1) // 2, seed)])
    if not budget:
        raise ValueError("no labelled curves: every file needs a 'label' variable with values ≥ 0")
    if strategy != "suggest":
        return np.sort(np.concatenate(chosen))
    if h is None:
        raise ValueError("the 'suggest' strategy needs features h to rank curves")
    return active_labels(h, curves.label, np.concatenate(initial), budget, probe)


# --- features --------------------------------------------------------------------------------


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


# --- scoring ------------------------------------------------------------------------------------


def decode_runs(
    probabilities: np.ndarray, curves: Curves, pressures: list[np.ndarray],
    decoder: DecoderConfig, known: np.ndarray | None = None,
) -> np.ndarray:
    """Decoded labels of every run; curves in ``known`` are clamped to their given labels."""
    probs = np.array(probabilities, dtype=float, copy=True)
    if known is not None and len(known):
        probs[known] = 1e-3
        probs[known, curves.label[known]] = 1.0 - 2e-3
    out = np.empty(len(probs), dtype=np.int64)
    for r, p in enumerate(pressures):
        sel = np.flatnonzero(curves.run == r)
        out[sel] = decode(probs[sel], p, decoder).labels
    return out


def score(
    pred: np.ndarray, curves: Curves, pressures: list[np.ndarray], names: list[str],
    scored: np.ndarray, probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per-run and overall metrics of ``pred`` on the ``scored`` curves, plus onset and end
    pressure errors per run (from the full predicted and true label sequences)."""
    truth = curves.truth
    files, onset_err, end_err, widths = {}, [], [], []
    for r, name in enumerate(names):
        sel = np.flatnonzero(curves.run == r)
        report: dict[str, Any] = (classification_report(truth[sel][scored[sel]],
                                                        pred[sel][scored[sel]])
                                  if scored[sel].any() else {})
        errors = transition_errors(pred[sel], truth[sel], pressures[r])
        report.update(errors)
        in_order = sel[np.argsort(curves.order[sel], kind="stable")]
        report["ambiguity_width"] = ambiguity_width(pred[in_order])
        report["true_ambiguity_width"] = ambiguity_width(truth[in_order])
        widths.append(report["ambiguity_width"])
        onset_err.append(errors["onset_error_gpa"])
        end_err.append(errors["end_error_gpa"])
        files[name] = report
    overall = classification_report(truth[scored], pred[scored])
    overall["onset_error_gpa"] = float(np.mean(onset_err)) if onset_err else None
    overall["end_error_gpa"] = float(np.mean(end_err)) if end_err else None
    overall["ambiguity_width"] = float(np.mean(widths)) if widths else None  # no labels used
    if probabilities is not None:
        overall["ece"] = expected_calibration_error(probabilities[scored], truth[scored])
    return {"files": files, "overall": overall}


def transition_errors(pred: np.ndarray, truth: np.ndarray, pressure: np.ndarray
                      ) -> dict[str, float | None]:
    """|predicted − true| onset and end pressure (GPa) along the run's first sweep; a change
    found on one side only counts against the sweep's last pressure."""
    p_hat, p_true = transition_pressures(pred, pressure), transition_pressures(truth, pressure)
    out: dict[str, float | None] = {}
    for kind in ("onset", "end"):
        a, b = p_hat[kind], p_true[kind]
        if a is None and b is None:
            err = 0.0
        else:
            a = p_hat["sweep_end"] if a is None else a
            b = p_true["sweep_end"] if b is None else b
            err = abs(a - b)
        out[f"{kind}_error_gpa"] = float(err)
        out[f"{kind}_true"], out[f"{kind}_predicted"] = p_true[kind], p_hat[kind]
    return out


def _positions(curves: Curves) -> np.ndarray:
    """Relative acquisition position in [0, 1) of each curve within its run."""
    sizes = np.bincount(curves.run)
    return curves.order / np.maximum(sizes[curves.run], 1)


# --- the protocol --------------------------------------------------------------------------


def evaluate_datasets(
    data: Mapping[str, xr.Dataset],
    test: Mapping[str, xr.Dataset] | None = None,
    *,
    method: str = DEFAULT_METHOD,
    label_fraction: float = 0.03,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    config: PretrainConfig | None = None,
    probe: ProbeConfig | None = None,
    on_epoch: EpochCallback | None = None,
    label_strategy: str = "even",
    augmentation: str | None = None,
    preprocessing: Preprocessing | None = None,
    decoder: DecoderConfig | None = None,
    baselines: bool | tuple[str, ...] = False,
    keep_model: bool = False,
    encoder: Any = None,
    supervised: SupervisedConfig | None = None,
) -> dict[str, Any]:
    """Run the protocol on in-memory Datasets: within-run on ``data`` without ``test``,
    cross-run on ``test`` with it (then ``within_run`` holds the within-run scores of the
    same model on ``data``).

    ``method``: an SSL method (pretrained on ``data`` only), ``raw``, ``untrained``, or an
    end-to-end supervised model (:data:`~specflow.learn.names.SUPERVISED_METHODS`, trained
    on the same labels with ``supervised``'s settings).
    ``encoder``: an encoder already pretrained on ``data`` to probe instead of pretraining
    (SSL methods; e.g. to share one pretraining across label budgets).
    ``baselines``: True for every control available, or a tuple of control names.
    ``keep_model``: also return the deployable bundle (``model``; not JSON-serialisable).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {METHODS}")
    names, runs = list(data), list(data.values())
    test_names, test_runs = list(test or {}), list((test or {}).values())
    if set(names) & set(test_names):
        raise ValueError(f"runs both in data and test: {sorted(set(names) & set(test_names))}")
    prep = preprocessing or Preprocessing()
    decoder = decoder or DecoderConfig()
    probe = probe or ProbeConfig(seed=seed)
    if method in SSL_METHODS:
        config = config or default_config(method, epochs, seed, device)
        config = replace(config, method=method, preprocessing=prep,
                         augmentation=augmentation or config.augmentation)
    train_curves = to_curves(runs, preprocessing=prep)
    test_curves = (to_curves(test_runs, grid=train_curves.grid, preprocessing=prep)
                   if test_runs else None)
    if method in SUPERVISED_METHODS:
        labelled = pick_probe_labels(train_curves, label_fraction, seed, label_strategy,
                                     train_curves.x, probe)
        fitted = fit_network(method, train_curves, test_curves, labelled, supervised, seed,
                             device)
    else:
        feats = features(method, train_curves, test_curves, runs, config, seed, device,
                         on_epoch, encoder)
        labelled = pick_probe_labels(train_curves, label_fraction, seed, label_strategy,
                                     feats.train, probe)
        fitted = fit_linear(feats, train_curves, labelled, probe, device)
    y = train_curves.label[labelled]

    p_train = [r.pressure.values.astype(float) for r in runs]
    p_test = [r.pressure.values.astype(float) for r in test_runs]
    within = np.ones(len(train_curves.label), bool)
    within[labelled] = False
    within &= train_curves.truth >= 0

    def evaluate_probs(prob_train: np.ndarray, prob_test: np.ndarray | None,
                       temperature: float = 1.0) -> dict:
        """Decoded scores of one set of (calibrated) probabilities, both protocols; the
        decoder undoes the calibration ``temperature`` (:meth:`DecoderConfig.undoing`)."""
        dec = decoder.undoing(temperature)
        out = {"within_run": score(
            decode_runs(prob_train, train_curves, p_train, dec, labelled), train_curves,
            p_train, names, within, prob_train)}
        if test_curves is not None:
            out["cross_run"] = score(
                decode_runs(prob_test, test_curves, p_test, dec), test_curves, p_test,
                test_names, test_curves.truth >= 0, prob_test)
        return out

    prob_train, prob_test = fitted.prob_train, fitted.prob_test
    scores = evaluate_probs(prob_train, prob_test, fitted.temperature)
    main = "cross_run" if test_curves is not None else "within_run"
    per_curve = (score(prob_test.argmax(1), test_curves, p_test, test_names,
                       test_curves.truth >= 0)
                 if test_curves is not None else
                 score(prob_train.argmax(1), train_curves, p_train, names, within))
    result: dict[str, Any] = {
        "method": METHOD_NAMES.get(method, method),
        "protocol": "cross-run" if test_curves is not None else "within-run",
        "label_fraction": label_fraction,
        "label_strategy": label_strategy,
        "n_labels": int(len(labelled)),
        "labels_per_class": np.bincount(y, minlength=3).tolist(),
        "seed": seed,
        "data": names,
        "test": test_names,
        "grid": {"axis": prep.axis, "first": float(train_curves.grid[0]),
                 "last": float(train_curves.grid[-1]), "points": int(train_curves.grid.size)},
        "pretrain_seconds": fitted.pretrain_seconds,
        "train_seconds": fitted.train_seconds,
        "files": scores[main]["files"],
        "overall": scores[main]["overall"],
        "per_curve": per_curve["overall"],
    }
    if test_curves is not None:
        result["within_run"] = scores["within_run"]
    if keep_model:
        result["model"] = fitted.bundle(train_curves, prep, decoder)
    if baselines:
        wanted = controls.CONTROLS if baselines is True else tuple(baselines)
        pressure = (np.concatenate(p_train),
                    np.concatenate(p_test) if p_test else None)
        result["baselines"] = run_controls(
            wanted, train_curves, test_curves, runs, labelled, probe, seed, device,
            evaluate_probs, main, pressure)
    return result


def run_controls(
    wanted: tuple[str, ...], train: Curves, test: Curves | None, runs: list[xr.Dataset],
    labelled: np.ndarray, probe: ProbeConfig, seed: int, device: str, evaluate_probs, main: str,
    pressure: tuple[np.ndarray, np.ndarray | None],
) -> dict[str, Any]:
    """Scores of each control with the same labels, decoding and scored curves.

    Each entry holds the main protocol's ``overall`` keys, and ``within_run`` when the main
    protocol is cross-run.
    """
    out: dict[str, Any] = {}
    y = train.label[labelled]
    for name in wanted:
        temperature = 1.0
        if name not in controls.CONTROLS:
            raise ValueError(f"unknown control {name!r}; use one of {controls.CONTROLS}")
        if name == "reference" and controls.reference_checkpoint() is None:
            continue
        if name == "pressure":
            p_train, p_test = pressure
            prob_train = controls.pressure_probabilities(p_train[labelled], y, p_train, seed)
            prob_test = (None if p_test is None else
                         controls.pressure_probabilities(p_train[labelled], y, p_test, seed))
        elif name == "neighbour":
            prob_train = controls.one_hot(_within_run_neighbours(train, labelled))
            prob_test = (None if test is None else controls.one_hot(
                controls.neighbour_labels(_positions(train)[labelled], y, _positions(test))))
        else:
            feats = features(name, train, test, runs, None, seed, device)
            fitted = fit_probe(feats.train[labelled], y, train.x[labelled],
                               feats.featurizer(device), probe, groups=train.run[labelled])
            prob_train = fitted.probabilities(feats.train)
            prob_test = None if feats.test is None else fitted.probabilities(feats.test)
            temperature = fitted.temperature
        scores = evaluate_probs(prob_train, prob_test, temperature)
        entry = dict(scores[main]["overall"])
        entry["files"] = scores[main]["files"]
        if main == "cross_run":
            entry["within_run"] = scores["within_run"]["overall"]
        out[name] = entry
    return out


def _within_run_neighbours(curves: Curves, labelled: np.ndarray) -> np.ndarray:
    """Per run, the label of the nearest labelled curve in acquisition order."""
    out = np.zeros(len(curves.run), dtype=np.int64)
    for r in np.unique(curves.run):
        sel = np.flatnonzero(curves.run == r)
        mine = labelled[curves.run[labelled] == r]
        if not len(mine):  # no label in this run: fall back to every labelled curve
            mine = labelled
        out[sel] = controls.neighbour_labels(curves.order[mine], curves.label[mine],
                                             curves.order[sel])
    return out


def evaluate(
    paths: list[Path],
    test: list[Path] | None = None,
    method: str = DEFAULT_METHOD,
    label_fraction: float = 0.03,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    json_out: Path | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``method`` on spectra files (cross-run on ``test`` files when given);
    optionally write the result as JSON (see :func:`evaluate_datasets`)."""
    data, held_out = _read_named(paths), _read_named(test or [])
    clash = set(data) & set(held_out)
    if clash:
        held_out = {f"test:{k}": v for k, v in held_out.items()}
    out = evaluate_datasets(data, held_out or None, method=method,
                            label_fraction=label_fraction, epochs=epochs, seed=seed,
                            device=device, **kwargs)
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2, default=_json_default))
    return out


def _read_named(paths: list[Path]) -> dict[str, xr.Dataset]:
    out: dict[str, xr.Dataset] = {}
    for p in map(Path, paths):
        name = p.stem if p.stem not in out else str(p)
        out[name] = read_dataset(p)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
