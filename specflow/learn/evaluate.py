"""The evaluation protocols: what a promoted model would score on tomorrow's run.

* **within-run** (the paper's): fit on the runs with a few labels revealed inside each run,
  score the other curves of the same runs;
* **cross-run**: fit on the ``data`` runs only; score whole ``test`` runs the model never
  saw, not even unlabelled (a test run that *is* a training run is refused:
  :mod:`specflow.data.fingerprint`).

The model is a :class:`~specflow.learn.classifier.PhaseClassifier` fitted on the revealed
labels (none: zero-label mode, with a corpus). Every score is computed on what the deployed
model outputs: per-curve probabilities decoded along each run
(:func:`specflow.learn.decode.decode`); ``per_curve`` keeps the undecoded argmax. Labels are
picked without class information by default (``even``: evenly spaced in acquisition order).
With ``baselines`` the same labels feed the controls of :mod:`specflow.learn.controls`, and
``paired`` holds the method's difference to each, run by run, with a 95 % interval; with
``ceiling`` the ideal observer (:mod:`specflow.simulator.observer`) scores the simulated test runs.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from specflow.data.fingerprint import refuse_training_runs
from specflow.data.labels import LabelSpec
from specflow.data.preprocess import Preprocessing
from specflow.data.sources import find_runs, read_run
from specflow.learn import controls
from specflow.learn.ceiling import observer_probabilities
from specflow.learn.classifier import PhaseClassifier
from specflow.learn.data import Curves, to_curves, wavelength_of
from specflow.learn.decode import DecoderConfig, decode, transition_indices
from specflow.learn.metrics import (
    accuracy_outside_boundaries,
    ambiguity_width,
    classification_report,
    expected_calibration_error,
    paired_difference,
)
from specflow.learn.names import DEFAULT_METHOD, LABEL_STRATEGIES, METHOD_NAMES
from specflow.learn.pretrain import PretrainConfig
from specflow.learn.probe import ProbeConfig, active_labels, select_labels
from specflow.learn.supervised import SupervisedConfig

PAIRED_METRICS = ("accuracy", "onset_error_gpa", "end_error_gpa", "boundary_error_curves")


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
    """Per-run and overall metrics of ``pred`` on the ``scored`` curves: classification
    (:func:`~specflow.learn.metrics.classification_report`), accuracy away from the true
    boundaries, and — from the full predicted and true label sequences — the onset and end
    pressure errors (GPa) and the boundary errors (curves) of each run's first sweep."""
    truth = curves.truth
    files: dict[str, Any] = {}
    per_run: dict[str, list[float]] = {k: [] for k in (
        "onset_error_gpa", "end_error_gpa", "boundary_error_curves", "ambiguity_width")}
    for r, name in enumerate(names):
        sel = np.flatnonzero(curves.run == r)
        in_order = sel[np.argsort(curves.order[sel], kind="stable")]
        mask = scored[in_order]
        report: dict[str, Any] = (classification_report(truth[in_order][mask],
                                                        pred[in_order][mask])
                                  if mask.any() else {})
        report.update(transition_errors(pred[in_order], truth[in_order],
                                        pressures[r][curves.order[in_order]]))
        report["accuracy_outside_boundaries"] = accuracy_outside_boundaries(
            pred[in_order], truth[in_order], mask)
        report["ambiguity_width"] = ambiguity_width(pred[in_order])
        report["true_ambiguity_width"] = ambiguity_width(truth[in_order])
        for key in per_run:
            per_run[key].append(report[key])
        files[name] = report
    overall = classification_report(truth[scored], pred[scored])
    for key, values in per_run.items():  # no labels are used by the ambiguity width
        overall[key] = float(np.mean(values)) if values else None
    outside = [f["accuracy_outside_boundaries"] for f in files.values()
               if f["accuracy_outside_boundaries"] is not None]
    overall["accuracy_outside_boundaries"] = float(np.mean(outside)) if outside else None
    if probabilities is not None:
        overall["ece"] = expected_calibration_error(probabilities[scored], truth[scored])
    return {"files": files, "overall": overall}


def transition_errors(pred: np.ndarray, truth: np.ndarray, pressure: np.ndarray
                      ) -> dict[str, float | int | None]:
    """|predicted − true| onset and end along the run's first sweep (labels in acquisition
    order), in GPa and in curves; a change found on one side only counts against the sweep's
    end. ``boundary_error_curves`` is the mean of the onset and end errors in curves."""
    at_hat = transition_indices(pred, pressure)
    at_true = transition_indices(truth, pressure)
    out: dict[str, float | int | None] = {}
    in_curves = []
    for kind in ("onset", "end"):
        a, b = at_hat[kind], at_true[kind]
        p_hat = None if a is None else float((pressure[a - 1] + pressure[a]) / 2)
        p_true = None if b is None else float((pressure[b - 1] + pressure[b]) / 2)
        out[f"{kind}_true"], out[f"{kind}_predicted"] = p_true, p_hat
        if a is None and b is None:
            out[f"{kind}_error_gpa"], out[f"{kind}_error_curves"] = 0.0, 0
        else:
            stop = at_true["sweep_stop"] or len(pressure)
            a, b = (stop if a is None else a), (stop if b is None else b)
            end_p = float(pressure[stop - 1])
            out[f"{kind}_error_gpa"] = abs((end_p if p_hat is None else p_hat)
                                           - (end_p if p_true is None else p_true))
            out[f"{kind}_error_curves"] = int(abs(a - b))
        in_curves.append(out[f"{kind}_error_curves"])
    out["boundary_error_curves"] = float(np.mean(in_curves))
    return out


def _positions(curves: Curves) -> np.ndarray:
    """Relative acquisition position in [0, 1) of each curve within its run."""
    sizes = np.bincount(curves.run)
    return curves.order / np.maximum(sizes[curves.run], 1)


# --- the protocol --------------------------------------------------------------------------


def run_probabilities(clf: PhaseClassifier, runs: list[xr.Dataset]) -> np.ndarray:
    """The fitted model's calibrated probabilities of every curve, run by run (a sequence
    model reads each run as one sequence)."""
    parts = [clf.predictor_.predict(ds["intensity"].values, ds["two_theta"].values,
                                    wavelength_of(ds))["probabilities"] for ds in runs]
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.float32)


def masked_labels(curves: Curves, labelled: np.ndarray) -> list[np.ndarray]:
    """Per run, the labels of the ``labelled`` curves and -1 elsewhere (what the model may
    see)."""
    shown = np.full(len(curves.label), -1)
    shown[labelled] = curves.label[labelled]
    order = [np.flatnonzero(curves.run == r) for r in np.unique(curves.run)]
    return [shown[idx] for idx in order]


@dataclass
class ScoredSet:
    """Runs scored by one protocol: their curves, which curves count, their pressures, and
    the labelled curves (within-run: clamped to their labels when decoding)."""

    names: list[str]
    runs: list[xr.Dataset]
    curves: Curves
    scored: np.ndarray
    pressures: list[np.ndarray]
    known: np.ndarray | None = None

    @classmethod
    def of(cls, named: Mapping[str, xr.Dataset], curves: Curves,
           scored: np.ndarray | None = None, known: np.ndarray | None = None) -> ScoredSet:
        return cls(list(named), list(named.values()), curves,
                   curves.truth >= 0 if scored is None else scored,
                   [ds.pressure.values.astype(float) for ds in named.values()], known)

    def score(self, probabilities: np.ndarray, decoder: DecoderConfig) -> dict[str, Any]:
        pred = decode_runs(probabilities, self.curves, self.pressures, decoder, self.known)
        return score(pred, self.curves, self.pressures, self.names, self.scored,
                     probabilities)


def evaluate_datasets(
    data: Mapping[str, xr.Dataset],
    test: Mapping[str, xr.Dataset] | None = None,
    *,
    method: str = DEFAULT_METHOD,
    corpus: Any = "auto",
    label_fraction: float = 0.03,
    adapt: bool = True,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    config: PretrainConfig | None = None,
    probe: ProbeConfig | None = None,
    label_strategy: str = "even",
    augmentation: str | None = None,
    preprocessing: Preprocessing | None = None,
    decoder: DecoderConfig | None = None,
    baselines: bool | tuple[str, ...] = False,
    keep_model: bool = False,
    encoder: Any = None,
    supervised: SupervisedConfig | None = None,
    ceiling: bool = False,
    corpus_training: SupervisedConfig | None = None,
    extra: Mapping[str, Mapping[str, xr.Dataset]] | None = None,
    paths: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """Run the protocol on in-memory Datasets: within-run on ``data`` without ``test``,
    cross-run on ``test`` with it (then ``within_run`` holds the within-run scores of the
    same model on ``data``).

    ``method`` and ``corpus``: the :class:`~specflow.learn.classifier.PhaseClassifier`'s
    (``auto``: a corpus network where the runs name a built-in transition).
    ``label_fraction``: share of each ``data`` run's curves whose labels the model sees (0:
    zero-label mode, needs a corpus). ``config``: SSL pretraining settings; ``encoder``: an
    encoder already pretrained on ``data`` to probe instead. ``baselines``: True for every
    control available, or a tuple of control names; ``paired`` then holds the method minus
    each control, run by run, with a 95 % interval. ``ceiling``: the ideal observer's scores
    on simulated test runs. ``extra``: more held-out sets (name → runs, e.g. ``shifted``)
    scored by the same fitted models; ``protocols`` holds every set's scores.
    ``paths`` (name → file) lets the leak check compare files. ``keep_model``: also return
    the fitted classifier (``model``; not JSON-serialisable).
    """
    names, runs = list(data), list(data.values())
    held_out = {"cross_run": dict(test or {}), **{k: dict(v) for k, v in (extra or {}).items()}}
    for group in held_out.values():
        if set(names) & set(group):
            raise ValueError(f"runs both in data and test: {sorted(set(names) & set(group))}")
        for message in refuse_training_runs(data, group, paths):
            warnings.warn(message, stacklevel=2)
    if label_strategy not in LABEL_STRATEGIES:
        raise ValueError(f"unknown label strategy {label_strategy!r}; use one of "
                         f"{LABEL_STRATEGIES}")
    prep = preprocessing or Preprocessing()
    decoder = decoder or DecoderConfig()
    probe = probe or ProbeConfig(seed=seed)
    if config is not None or augmentation is not None:
        base = config or PretrainConfig.quick(method="rrmoco", seed=seed, device=device)
        config = replace(base, preprocessing=prep,
                         augmentation=augmentation or base.augmentation)
    train_curves = to_curves(runs, preprocessing=prep)
    labelled = (np.zeros(0, dtype=int) if label_fraction == 0 else
                pick_probe_labels(train_curves, label_fraction, seed, label_strategy,
                                  train_curves.x, probe))
    within = np.ones(len(train_curves.label), bool)
    within[labelled] = False
    within &= train_curves.truth >= 0
    sets = {"within_run": ScoredSet.of(data, train_curves, within, labelled)}
    for name, group in held_out.items():
        if group:
            curves = to_curves(list(group.values()), grid=train_curves.grid,
                               preprocessing=prep)
            sets[name] = ScoredSet.of(group, curves)
    shown = masked_labels(train_curves, labelled)

    def fitted(name: str, with_corpus: Any) -> PhaseClassifier:
        return PhaseClassifier(
            method=name, corpus=with_corpus, adapt=adapt, epochs=epochs,
            pretrain_config=config if name == method else None, preprocessing=prep,
            probe=probe, supervised=supervised, corpus_training=corpus_training,
            decoder=decoder, seed=seed, device=device,
            encoder=encoder if name == method else None).fit(runs, shown)

    def scores_of(clf: PhaseClassifier) -> dict[str, dict[str, Any]]:
        dec = model_decoder(clf, decoder)
        return {k: v.score(run_probabilities(clf, v.runs), dec) for k, v in sets.items()}

    clf = fitted(method, corpus)
    protocols = scores_of(clf)
    main = "cross_run" if "cross_run" in sets else "within_run"
    test_set = sets[main]
    prob_main = run_probabilities(clf, test_set.runs)
    per_curve = score(prob_main.argmax(1), test_set.curves, test_set.pressures,
                      test_set.names, test_set.scored)
    y = train_curves.label[labelled]
    result: dict[str, Any] = {
        "method": METHOD_NAMES.get(clf.method_, clf.method_),
        "method_key": clf.method_,
        "corpus": clf.corpus_,
        "protocol": main.replace("_", "-"),
        "label_fraction": label_fraction,
        "label_strategy": label_strategy,
        "n_labels": int(len(labelled)),
        "labels_per_class": np.bincount(y, minlength=3).tolist(),
        "seed": seed,
        "data": names,
        "test": list(held_out["cross_run"]),
        "grid": {"axis": prep.axis, "first": float(train_curves.grid[0]),
                 "last": float(train_curves.grid[-1]), "points": int(train_curves.grid.size)},
        "pretrain_seconds": clf.pretrain_seconds_,
        "train_seconds": clf.train_seconds_,
        "files": protocols[main]["files"],
        "overall": protocols[main]["overall"],
        "per_curve": per_curve["overall"],
        "protocols": protocols,
    }
    if main == "cross_run":
        result["within_run"] = protocols["within_run"]
    if keep_model:
        result["model"] = clf
    if baselines and labelled.size:
        wanted = controls.CONTROLS if baselines is True else tuple(baselines)
        per_control = run_controls(wanted, sets, train_curves, labelled, seed, decoder,
                                   lambda name: fitted(name, None), scores_of)
        for proto, entry in protocols.items():
            entry["baselines"] = {c: {**v[proto]["overall"], "files": v[proto]["files"]}
                                  for c, v in per_control.items()}
            entry["paired"] = {c: paired_scores(entry["files"], v[proto]["files"])
                               for c, v in per_control.items()}
        result["baselines"] = {
            c: {**v[main]["overall"], "files": v[main]["files"],
                **({"within_run": v["within_run"]["overall"]} if main == "cross_run" else {})}
            for c, v in per_control.items()}
        result["paired"] = protocols[main]["paired"]
    if ceiling:
        for proto, scored_set in sets.items():
            if proto == "within_run":
                continue
            truth = observer_probabilities(scored_set.runs)
            if truth is not None:  # simulated runs whose truth can be rebuilt
                protocols[proto]["ceiling"] = scored_set.score(truth, decoder)["overall"]
        if "ceiling" in protocols.get(main, {}):
            result["ceiling"] = protocols[main]["ceiling"]
    return result


def model_decoder(clf: PhaseClassifier, default: DecoderConfig) -> DecoderConfig:
    """The decoder the fitted model's bundle deploys (it undoes the calibration
    temperature), else ``default``."""
    saved = clf.bundle_.get("decoder")
    return DecoderConfig(**saved) if saved else default


def paired_scores(method_files: Mapping[str, dict], control_files: Mapping[str, dict]
                  ) -> dict[str, dict[str, float]]:
    """Method − control on the same runs, per metric of :data:`PAIRED_METRICS`: mean and
    95 % interval over the runs (:func:`~specflow.learn.metrics.paired_difference`)."""
    out = {}
    for key in PAIRED_METRICS:
        a, b = [], []
        for name, m in method_files.items():
            c = control_files.get(name, {})
            if m.get(key) is not None and c.get(key) is not None:
                a.append(m[key])
                b.append(c[key])
        out[key] = paired_difference(a, b)
    return out


def run_controls(
    wanted: tuple[str, ...], sets: Mapping[str, ScoredSet], train: Curves,
    labelled: np.ndarray, seed: int, decoder: DecoderConfig, fit_control, scores_of,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Scores of each control on every scored set, with the same labels, decoding and
    scored curves: ``pressure`` and ``neighbour`` directly, the curve controls (``raw``,
    ``untrained``, ``reference``) as few-label classifiers without a corpus."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    y = train.label[labelled]
    p_train = train.pressure if train.pressure is not None else np.concatenate(
        sets["within_run"].pressures)
    for name in wanted:
        if name not in controls.CONTROLS:
            raise ValueError(f"unknown control {name!r}; use one of {controls.CONTROLS}")
        if name == "reference" and controls.reference_checkpoint() is None:
            continue
        if name in ("pressure", "neighbour"):
            out[name] = {}
            for proto, scored_set in sets.items():
                if name == "pressure":
                    probs = controls.pressure_probabilities(
                        p_train[labelled], y, np.concatenate(scored_set.pressures), seed)
                elif proto == "within_run":
                    probs = controls.one_hot(_within_run_neighbours(train, labelled))
                else:
                    probs = controls.one_hot(controls.neighbour_labels(
                        _positions(train)[labelled], y, _positions(scored_set.curves)))
                out[name][proto] = scored_set.score(probs, decoder)
        else:
            out[name] = scores_of(fit_control(name))
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
    paths: list[Path | str],
    test: list[Path | str] | None = None,
    method: str = DEFAULT_METHOD,
    label_fraction: float = 0.03,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    json_out: Path | None = None,
    read: Mapping[str, Any] | None = None,
    labels: LabelSpec | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``method`` on the runs ``paths`` name (files, folders, globs; cross-run on the
    ``test`` runs when given); optionally write the result as JSON (see
    :func:`evaluate_datasets`). ``read``: the reader's options (beam energy, wavelength, radial
    unit); ``labels``: labels given as a table or pressure ranges. A test run that is a
    training run — the same file, ``run_uid`` or curves — is refused
    (:class:`~specflow.data.fingerprint.TrainingRunInTest`); a near-duplicate is warned about.
    """
    read = dict(read or {})
    data = _read_named(paths, labels, read)
    held_out = _read_named(test or [], labels, read)
    clash = set(data) & set(held_out)
    if clash:
        held_out = {f"test:{k}": v for k, v in held_out.items()}
    files = {**{name: p for name, (p, _) in data.items()},
             **{name: p for name, (p, _) in held_out.items()}}
    out = evaluate_datasets({k: ds for k, (_, ds) in data.items()},
                            {k: ds for k, (_, ds) in held_out.items()} or None,
                            method=method, label_fraction=label_fraction, epochs=epochs,
                            seed=seed, device=device, paths=files, **kwargs)
    if json_out is not None:
        out.pop("model", None)
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2, default=json_default))
    return out


def _read_named(values: list[Path | str], labels: LabelSpec | None,
                read: dict[str, Any]) -> dict[str, tuple[Path, xr.Dataset]]:
    return {src.name: (src.location, read_run(src, labels, **read))
            for src in find_runs(values)}


def json_default(value: Any) -> Any:
    """``json.dumps(..., default=json_default)``: numpy scalars and arrays as plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
