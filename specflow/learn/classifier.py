"""``PhaseClassifier``: fit on runs with a few labels, predict phases as an xarray Dataset.

The notebook face of specflow, in the style of scikit-learn estimators and xarray: it knows
nothing of MLflow or Tiled (the registry's pyfunc serves the same bundle, see
:meth:`PhaseClassifier.bundle_`).

    clf = PhaseClassifier(method="raw").fit(ds, labels=lab)   # lab: DataArray on `curve`
    pred = clf.predict(ds)       # xr.Dataset: label, label_raw, probabilities, ood_score
    clf.save("fe.pt"); PhaseClassifier.load("fe.pt").predict(other_run)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
import xarray as xr

from specflow.data.preprocess import Preprocessing
from specflow.data.schema import CURVE, INTENSITY, LABEL, PRESSURE, TIME, TWO_THETA, validate
from specflow.learn.data import to_curves, wavelength_of
from specflow.learn.decode import DecoderConfig
from specflow.learn.devices import check_device
from specflow.learn.evaluate import default_config, features, fit_linear, fit_network
from specflow.learn.names import DEFAULT_METHOD, METHODS, SUPERVISED_METHODS
from specflow.learn.predictor import PhasePredictor, ood_verdict
from specflow.learn.probe import ProbeConfig
from specflow.learn.supervised import SupervisedConfig

MethodName = Literal["rrmoco", "rr", "moco", "selftime", "raw", "untrained", "cnn", "lstm",
                     "transformer", "fnn", "resnet", "convsc", "convsct", "binned"]
PHASES = ("before", "during", "after")


@dataclass
class PhaseClassifier:
    """Phase labels (0 before, 1 during, 2 after) for diffraction runs.

    A linear probe is fitted on every labelled curve over features of the curves (or an
    end-to-end supervised network is trained on them), then :meth:`predict` decodes each
    run along its acquisition order. Parameters are checked at construction, not deep in
    training.

    Parameters
    ----------
    method : str
        Features under the probe: a seeded random ConvSC encoder (``untrained``, the
        default: best on the cross-run benchmark), the preprocessed curves (``raw``), or
        an encoder pretrained self-supervised on the runs given to :meth:`fit`
        (``rrmoco``, ``rr``, ``moco``, ``selftime``). Or an end-to-end supervised model
        (``cnn``, ``lstm``, ``transformer``, ``fnn``, ``resnet``, ``convsc``, ``convsct``,
        ``binned``; :mod:`specflow.models.supervised`); ``transformer`` and ``convsct``
        are transductive: a curve's label depends on the other curves of the run passed
        to :meth:`predict`.
    epochs : int, optional
        Pretraining epochs of an SSL method (default: the preset's).
    preset : {"quick", "paper"}, optional
        SSL preset; default: paper on CUDA, quick on CPU.
    preprocessing : Preprocessing
        How curves become model input (Q grid from the run's energy, gaps, spikes,
        baseline); stored with the model.
    probe : ProbeConfig, optional
        The linear probe's settings (augmented copies, calibration).
    supervised : SupervisedConfig, optional
        Training settings of a supervised model (steps, batch, augmentation, e.g.
        ``arch_kwargs={"bins": 8}`` for ``binned``).
    decoder : DecoderConfig or None
        Sequence decoding along each run; None labels curve by curve.
    seed : int
        Random seed.
    device : str
        ``auto``, ``cpu`` or ``cuda``.

    Attributes
    ----------
    n_labels_ : int
        Labels the probe was fitted on.
    labels_per_class_ : list of int
        Labels per phase.
    bundle_ : dict
        The deployable model (tensors and plain values), as the MLflow pyfunc serves it.

    Examples
    --------
    >>> import numpy as np, specflow
    >>> ds = specflow.simulate("Fe", curves=120, seed=3)
    >>> lab = ds["label"].where(np.arange(120) % 8 == 0)  # 15 labels, NaN = unknown
    >>> pred = PhaseClassifier(method="raw").fit(ds, labels=lab).predict(ds)
    >>> pred["probabilities"].dims
    ('curve', 'phase')
    """

    method: MethodName = DEFAULT_METHOD  # the benchmark table's best, see names.py
    epochs: int | None = None
    preset: Literal["quick", "paper"] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    probe: ProbeConfig | None = None
    supervised: SupervisedConfig | None = None
    decoder: DecoderConfig | None = field(default_factory=DecoderConfig)
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        self.method = str(self.method)  # type: ignore[assignment]  # e.g. a StrEnum member
        self.device = check_device(self.device)
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; use one of {METHODS}")
        if self.preset not in (None, "quick", "paper"):
            raise ValueError(f"unknown preset {self.preset!r}; use 'quick' or 'paper'")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be ≥ 1, got {self.epochs}")

    # ----------------------------------------------------------------------------- fit
    def fit(self, data: xr.Dataset | Sequence[xr.Dataset],
            labels: xr.DataArray | np.ndarray | Sequence[Any] | None = None) -> Self:
        """Fit on one run or several.

        Parameters
        ----------
        data : xarray.Dataset or list of Dataset
            Runs in the canonical layout.
        labels : DataArray or array on ``curve``, or a list of them (one per run), optional
            0, 1, 2; -1 or NaN for unknown. They replace the runs' own ``label`` variable;
            without them that variable is used. Every known label trains the probe.

        Returns
        -------
        PhaseClassifier
            ``self``, fitted.
        """
        runs = with_labels(data, labels)
        curves = to_curves(runs, preprocessing=self.preprocessing)
        known = np.flatnonzero(curves.label >= 0)
        if known.size == 0:
            raise ValueError("no labelled curves: give labels (0 before, 1 during, 2 after; "
                             "-1 unknown) for at least one curve of each phase present")
        if np.unique(curves.label[known]).size < 2:
            raise ValueError("labels of at least two phases are needed to fit a classifier")
        if self.method in SUPERVISED_METHODS:
            fitted = fit_network(self.method, curves, None, known, self.supervised, self.seed,
                                 self.device)
        else:
            config = None
            if self.method not in ("raw", "untrained"):
                config = default_config(self.method, self.epochs, self.seed, self.device,
                                        self.preset)
                config.preprocessing = self.preprocessing
            feats = features(self.method, curves, None, runs, config, self.seed, self.device)
            fitted = fit_linear(feats, curves, known, self.probe or ProbeConfig(seed=self.seed),
                                self.device)
        self.bundle_ = fitted.bundle(curves, self.preprocessing, self.decoder)
        self.predictor_ = PhasePredictor(self.bundle_)
        self.n_labels_ = int(known.size)
        self.labels_per_class_ = np.bincount(curves.label[known], minlength=3).tolist()
        self.pretrain_seconds_ = fitted.pretrain_seconds
        self.train_seconds_ = fitted.train_seconds
        return self

    # ------------------------------------------------------------------------- predict
    def predict(self, ds: xr.Dataset) -> xr.Dataset:
        """Phases of one run.

        Parameters
        ----------
        ds : xarray.Dataset
            One run in the canonical layout (any 2θ grid; its ``energy`` or ``wavelength``
            attribute for Q-grid models).

        Returns
        -------
        xarray.Dataset
            On the run's ``curve`` dim: ``label`` (decoded along the run), ``label_raw``
            (per-curve argmax), ``probabilities`` (curve, phase; calibrated) and
            ``ood_score`` (> 1: unlike the training runs); attrs ``ood_flag`` and
            ``ood_median`` give the run's out-of-distribution verdict.
        """
        predictor = self._fitted()
        validate(ds)
        out = predictor.predict(ds[INTENSITY].values, ds[TWO_THETA].values, wavelength_of(ds),
                                ds[PRESSURE].values)
        coords = {CURVE: ds[CURVE].values if CURVE in ds.coords else np.arange(
            ds.sizes[CURVE]), "phase": list(PHASES)}
        for name in (PRESSURE, TIME):
            coords[name] = (CURVE, ds[name].values)
        verdict = ood_verdict(out["ood_score"])
        return xr.Dataset(
            {"label": (CURVE, out["label"].astype(np.int8), {
                "flag_values": "0 1 2", "flag_meanings": "before during after"}),
             "label_raw": (CURVE, out["label_raw"].astype(np.int8)),
             "probabilities": ((CURVE, "phase"), out["probabilities"]),
             "ood_score": (CURVE, out["ood_score"])},
            coords=coords,
            attrs={"method": self.method, "ood_flag": int(verdict["flag"]),
                   "ood_median": float(verdict["score"])})

    def predict_proba(self, ds: xr.Dataset) -> xr.DataArray:
        """Calibrated per-curve probabilities (curve, phase)."""
        return self.predict(ds)["probabilities"]

    # ----------------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the fitted model (tensors and plain values; no MLflow needed)."""
        path = Path(path)
        self._fitted()
        torch.save({"bundle": self.bundle_, "method": self.method,
                    "n_labels": self.n_labels_}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PhaseClassifier:
        """A classifier saved by :meth:`save` (loaded with ``weights_only=True``)."""
        saved = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls.from_bundle(saved["bundle"], method=saved.get("method", DEFAULT_METHOD),
                               n_labels=saved.get("n_labels"))

    @classmethod
    def from_bundle(cls, bundle: dict[str, Any], method: str = DEFAULT_METHOD,
                    n_labels: int | None = None) -> PhaseClassifier:
        """Wrap a deployable bundle (e.g. a registered model's) as a fitted classifier."""
        clf = cls(method=method if method in METHODS else DEFAULT_METHOD,
                  preprocessing=Preprocessing.from_dict(bundle["preprocessing"]),
                  decoder=DecoderConfig(**bundle["decoder"]) if bundle.get("decoder") else None)
        clf.bundle_ = bundle
        clf.predictor_ = PhasePredictor(bundle)
        clf.n_labels_ = n_labels
        return clf

    def _fitted(self) -> PhasePredictor:
        predictor = getattr(self, "predictor_", None)
        if predictor is None:
            raise RuntimeError("this PhaseClassifier is not fitted yet: call fit() first")
        return predictor


def with_labels(data: xr.Dataset | Sequence[xr.Dataset],
                labels: xr.DataArray | np.ndarray | Sequence[Any] | None) -> list[xr.Dataset]:
    """The runs as a list, each validated and carrying ``labels`` (when given) as ``label``."""
    runs = [data] if isinstance(data, xr.Dataset) else list(data)
    if not runs:
        raise ValueError("no runs given")
    if labels is None:
        return [validate(ds) for ds in runs]
    per_run = [labels] if isinstance(data, xr.Dataset) else list(labels)
    if len(per_run) != len(runs):
        raise ValueError(f"{len(per_run)} label arrays for {len(runs)} runs")
    out = []
    for i, (ds, lab) in enumerate(zip(runs, per_run, strict=True)):
        values = np.asarray(lab.values if isinstance(lab, xr.DataArray) else lab, dtype=float)
        if values.shape != (ds.sizes[CURVE],):
            raise ValueError(f"run {i}: {values.shape[0] if values.ndim else 0} labels for "
                             f"{ds.sizes[CURVE]} curves")
        values = np.where(np.isnan(values), -1, values)  # NaN (e.g. from .where()): unknown
        odd = np.unique(values[~np.isin(values, (-1, 0, 1, 2))])
        if odd.size:
            raise ValueError(f"run {i}: labels must be 0, 1, 2 or -1/NaN (unknown); found "
                             f"{odd[:5].tolist()}")
        out.append(validate(ds.assign({LABEL: (CURVE, values.astype(np.int8))})))
    return out
