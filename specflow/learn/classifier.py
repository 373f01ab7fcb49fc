"""``PhaseClassifier``: the one estimator that fits every specflow phase model.

The notebook face of specflow, with scikit-learn's estimator conventions (parameters stored
by the constructor and checked in :meth:`~PhaseClassifier.fit`, ``get_params`` /
``set_params`` / :func:`sklearn.base.clone`, fitted attributes ending in ``_``) and xarray in
and out. It knows nothing of MLflow or Tiled: the registry's pyfunc serves its
:attr:`~PhaseClassifier.bundle_`, and ``specflow evaluate`` and the MLflow pipeline fit it.

    clf = PhaseClassifier().fit(runs)             # zero labels: the transition's corpus
    clf = PhaseClassifier().fit(runs, labels=lab)  # a few labels adapt it
    pred = clf.predict(ds)   # xr.Dataset: label, label_raw, probabilities, ood_score
    clf.save("fe.pt"); PhaseClassifier.load("fe.pt").predict(other_run)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import torch
import xarray as xr
from sklearn.base import BaseEstimator, ClassifierMixin

from specflow.data.preprocess import Preprocessing
from specflow.data.schema import (
    CURVE,
    INTENSITY,
    LABEL,
    PHASE_NAMES,
    PRESSURE,
    TIME,
    TWO_THETA,
    validate,
)
from specflow.learn.corpus_model import CORPUS_TRAINING, corpus_network, with_arch
from specflow.learn.data import Curves, to_curves, wavelength_of
from specflow.learn.decode import DecoderConfig
from specflow.learn.devices import check_device
from specflow.learn.fitting import (
    corpus_head,
    corpus_network_bundle,
    default_config,
    features,
    fit_linear,
    fit_network,
)
from specflow.learn.names import (
    CORPUS_NETWORKS,
    DEFAULT_CORPUS_METHOD,
    DEFAULT_FEW_LABEL_METHOD,
    METHODS,
    SSL_METHODS,
    SUPERVISED_METHODS,
)
from specflow.learn.predictor import PhasePredictor, ood_verdict
from specflow.learn.pretrain import PretrainConfig
from specflow.learn.probe import ProbeConfig
from specflow.learn.supervised import SupervisedConfig
from specflow.simulator.corpus import Corpus, CorpusRecipe, build_corpus, recipe_from_text
from specflow.simulator.transitions import TRANSITIONS, transitions_named

MethodName = Literal["auto", "rrmoco", "rr", "moco", "selftime", "raw", "untrained",
                     "reference", "cnn", "lstm", "transformer", "fnn", "resnet", "convsc",
                     "convsct", "binned"]
PHASES = tuple(PHASE_NAMES[k] for k in sorted(PHASE_NAMES))
CorpusSpec = str | CorpusRecipe | Corpus | None
DEFAULT_DECODER = DecoderConfig()


class PhaseClassifier(ClassifierMixin, BaseEstimator):
    """Phase labels (0 before, 1 during, 2 after) for diffraction runs.

    With a **corpus** — many simulated runs of the transition (:mod:`specflow.simulator.corpus`)
    — a network trained on it labels new runs with no hand label at all; labels given to
    :meth:`fit` then adapt its head. Without one, a linear probe is fitted on the labels
    over features of the curves (or an end-to-end network is trained on them).
    :meth:`predict` decodes each run along its acquisition order.

    Parameters
    ----------
    method : str
        ``auto`` (default): the corpus network (``cnn``) when a corpus is available, else a
        linear probe on the curves (``raw``). Feature methods under a linear probe: ``raw``,
        ``untrained`` (a seeded random ConvSC encoder), ``reference`` (the authors' released
        encoder, when its checkpoint is present), or an encoder pretrained self-supervised on
        the runs given to :meth:`fit` (``rrmoco``, ``rr``, ``moco``, ``selftime``).
        End-to-end networks (``cnn``, ``lstm``, ``transformer``, ``fnn``, ``resnet``,
        ``convsc``, ``convsct``, ``binned``); ``cnn`` is trained on the corpus when there is
        one (once: cached, and shipped for the built-in transitions' default corpora), and
        ``convsc`` and ``convsct`` when given one (``corpus_training=corpus_training(
        arch="convsc", init=...)`` starts the encoder from a pretrained one, e.g. the
        shipped SSL encoder).
    corpus : str, CorpusRecipe, Corpus or None
        ``auto`` (default): for ``method`` ``auto`` and ``cnn``, the built-in transitions
        the runs name (:func:`named_transitions`: attrs ``material``, ``formula`` or
        ``composition``, else a ``sample`` description; every run must name one), for
        other methods none; transition names and at most one pressure marker
        joined by ``+`` (``Fe``, ``Fe+FeO``: each corpus run draws none, Au or Pt;
        ``Fe+Au``: Au in every corpus run; ``Fe+none``: no marker); a recipe
        (built once and cached, ``$SPECFLOW_CACHE``); a built corpus; None: no corpus.
    adapt : bool
        With a corpus network, recalibrate its outputs to the labels given to :meth:`fit`
        (per-class scale and bias pulled towards the network as trained; the pull chosen
        by leaving each labelled run out). With a corpus and a feature method, the labels
        join the corpus under the linear head either way.
    epochs, preset :
        SSL pretraining epochs and preset (``quick`` / ``paper``; default: paper on CUDA).
    preprocessing : Preprocessing, optional
        How curves become model input (default: the Q grid with SNIP baseline).
    probe : ProbeConfig, optional
        The linear probe's settings.
    supervised : SupervisedConfig, optional
        Training settings of a network trained on the labels alone.
    corpus_training : SupervisedConfig, optional
        Training settings of the corpus network (default
        :data:`~specflow.learn.corpus_model.CORPUS_TRAINING`; its ``arch`` is ``method``'s).
    pretrain_config : PretrainConfig, optional
        SSL pretraining settings (overrides ``epochs`` and ``preset``).
    encoder : torch.nn.Module, optional
        An encoder already pretrained, probed instead of pretraining one (SSL methods).
    decoder : DecoderConfig or None
        Sequence decoding along each run; None labels curve by curve.
    seed : int
    device : str
        ``auto``, ``cpu`` or ``cuda``.

    Attributes
    ----------
    method_ : str
        The method fitted (``auto`` resolved).
    corpus_ : dict or None
        The corpus recipe used.
    classes_ : ndarray
        ``[0, 1, 2]``.
    n_labels_, labels_per_class_ :
        Hand labels the model was fitted with (0 in zero-label mode).
    training_log_ : dict
        A corpus network's training settings, loss curve and seconds (corpus networks only).
    bundle_ : dict
        The deployable model (tensors and plain values), as the MLflow pyfunc serves it.

    Examples
    --------
    >>> import numpy as np, specflow
    >>> ds = specflow.simulate("Fe", curves=120, seed=3)
    >>> lab = ds["label"].where(np.arange(120) % 8 == 0)  # 15 labels, NaN = unknown
    >>> pred = PhaseClassifier(method="raw", corpus=None).fit(ds, lab).predict(ds)
    >>> pred["probabilities"].dims
    ('curve', 'phase')
    """

    def __init__(
        self,
        method: MethodName = "auto",
        corpus: CorpusSpec = "auto",
        *,
        adapt: bool = True,
        epochs: int | None = None,
        preset: Literal["quick", "paper"] | None = None,
        preprocessing: Preprocessing | None = None,
        probe: ProbeConfig | None = None,
        supervised: SupervisedConfig | None = None,
        corpus_training: SupervisedConfig | None = None,
        pretrain_config: PretrainConfig | None = None,
        encoder: torch.nn.Module | None = None,
        decoder: DecoderConfig | None = DEFAULT_DECODER,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.method = method
        self.corpus = corpus
        self.adapt = adapt
        self.epochs = epochs
        self.preset = preset
        self.preprocessing = preprocessing
        self.probe = probe
        self.supervised = supervised
        self.corpus_training = corpus_training
        self.pretrain_config = pretrain_config
        self.encoder = encoder
        self.decoder = decoder
        self.seed = seed
        self.device = device

    # ------------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if str(self.method) not in ("auto", *METHODS):
            raise ValueError(f"unknown method {self.method!r}; use 'auto' or one of {METHODS}")
        if self.preset not in (None, "quick", "paper"):
            raise ValueError(f"unknown preset {self.preset!r}; use 'quick' or 'paper'")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be ≥ 1, got {self.epochs}")
        if not (self.corpus is None or isinstance(self.corpus, CorpusRecipe | Corpus)
                or self.corpus in ("auto", "none")):
            try:
                recipe_from_text(str(self.corpus))
            except ValueError as err:
                raise ValueError(
                    f"unknown corpus {self.corpus!r}: use 'auto', None, built-in transitions "
                    f"({', '.join(TRANSITIONS)}) and at most one marker joined by '+' (Fe+Au), "
                    f"or a CorpusRecipe ({err})") from None
        check_device(self.device)

    def resolve_corpus(self, runs: Sequence[xr.Dataset]) -> CorpusRecipe | Corpus | None:
        """The corpus this classifier would use for ``runs``: ``auto`` is the built-in
        transitions the runs name, for the default method and its corpus network (other
        corpus networks, e.g. ``convsc``, train on a corpus only when given one)."""
        spec = self.corpus
        if spec is None or spec == "none":
            return None
        if isinstance(spec, CorpusRecipe | Corpus):
            return spec
        if spec == "auto":
            names = named_transitions(runs)
            wants = str(self.method) in ("auto", DEFAULT_CORPUS_METHOD)
            return None if names is None or not wants else CorpusRecipe(names)
        return recipe_from_text(str(spec))

    # ----------------------------------------------------------------------------- fit
    def fit(self, X: xr.Dataset | Sequence[xr.Dataset],
            y: xr.DataArray | np.ndarray | Sequence[Any] | None = None, *,
            labels: xr.DataArray | np.ndarray | Sequence[Any] | None = None) -> Self:
        """Fit on one run or several.

        Parameters
        ----------
        X : xarray.Dataset or list of Dataset
            Runs in the canonical layout.
        y : DataArray or array on ``curve``, or a list of them (one per run), optional
            0, 1, 2; -1 or NaN for unknown. They replace the runs' own ``label`` variable;
            without them that variable is used. None and no ``label`` variable: zero-label
            mode (needs a corpus).
        labels :
            The same as ``y`` (the name the notebook examples use).

        Returns
        -------
        PhaseClassifier
            ``self``, fitted.
        """
        self._check_params()
        self.training_log_ = None
        if y is not None and labels is not None:
            raise ValueError("give the labels once: as y or as labels=, not both")
        runs = with_labels(X, y if labels is None else labels)
        prep = self.preprocessing or Preprocessing()
        curves = to_curves(runs, preprocessing=prep)
        known = np.flatnonzero(curves.label >= 0)
        corpus = self.resolve_corpus(runs)
        if isinstance(corpus, Corpus) and corpus.preprocessing != prep:
            raise ValueError("the corpus was prepared with another preprocessing than this "
                             "classifier's; build it with the same Preprocessing")
        if corpus is None and known.size == 0:
            raise ValueError(
                "no labelled curves and no corpus: give labels (0 before, 1 during, 2 after; "
                "-1 unknown), or name the transition (corpus='Fe', or attrs 'material') so "
                "a simulated corpus can stand in for them")
        if corpus is None and np.unique(curves.label[known]).size < 2:
            raise ValueError("labels of at least two phases are needed to fit a classifier "
                             "without a corpus")
        method = str(self.method)
        if method == "auto":
            method = DEFAULT_CORPUS_METHOD if corpus is not None else DEFAULT_FEW_LABEL_METHOD
        self.bundle_, seconds = self._fit_bundle(method, runs, curves, known, corpus, prep)
        self.bundle_["method"] = method
        recipe = corpus.recipe if isinstance(corpus, Corpus) else corpus
        self.bundle_["corpus"] = recipe.to_dict() if recipe is not None else None
        self.predictor_ = PhasePredictor(self.bundle_)
        self.method_ = method
        self.corpus_ = self.bundle_["corpus"]
        self.classes_ = np.arange(len(PHASES))
        self.n_labels_ = int(known.size)
        self.labels_per_class_ = np.bincount(curves.label[known], minlength=3).tolist()
        self.pretrain_seconds_, self.train_seconds_ = seconds
        return self

    def _fit_bundle(self, method: str, runs: list[xr.Dataset], curves: Curves,
                    known: np.ndarray, corpus: CorpusRecipe | Corpus | None,
                    prep: Preprocessing) -> tuple[dict[str, Any], tuple[float, float]]:
        probe = self.probe or ProbeConfig(seed=self.seed)
        if method in SUPERVISED_METHODS and corpus is not None and method in CORPUS_NETWORKS:
            training = with_arch(self.corpus_training or CORPUS_TRAINING, method)
            trained = corpus_network(corpus, training, prep, self.device)
            bundle = corpus_network_bundle(trained, curves, known, self.adapt, prep,
                                           self.decoder, self.device)
            every = max(1, len(trained.history) // 150)  # a loss curve, not every step
            self.training_log_ = {"training": asdict(training),
                                  "loss": [float(v) for v in trained.history[::every]],
                                  "seconds": trained.seconds}
            return bundle, (0.0, trained.seconds)
        if method in SUPERVISED_METHODS:
            if known.size == 0:
                raise ValueError(f"method {method!r} without a corpus needs labels")
            fitted = fit_network(method, curves, None, known, self.supervised, self.seed,
                                 self.device)
            return (fitted.bundle(curves, prep, self.decoder),
                    (fitted.pretrain_seconds, fitted.train_seconds))
        config = None
        if method in SSL_METHODS:
            config = (replace(self.pretrain_config, method=method, seed=self.seed)
                      if self.pretrain_config is not None else
                      default_config(method, self.epochs, self.seed, self.device, self.preset))
            config.preprocessing = prep
        feats = features(method, curves, None, runs, config, self.seed, self.device,
                         encoder=self.encoder)
        if corpus is not None:
            built = corpus if isinstance(corpus, Corpus) else build_corpus(corpus, prep)
            bundle = corpus_head(feats, built, curves, known, probe, prep, self.decoder,
                                 self.device)
            return bundle, (feats.seconds, 0.0)
        fitted = fit_linear(feats, curves, known, probe, self.device)
        return (fitted.bundle(curves, prep, self.decoder),
                (fitted.pretrain_seconds, fitted.train_seconds))

    # ------------------------------------------------------------------------- predict
    def predict(self, X: xr.Dataset) -> xr.Dataset:
        """Phases of one run.

        Parameters
        ----------
        X : xarray.Dataset
            One run in the canonical layout (any 2θ grid; its ``energy`` or ``wavelength``
            attribute for Q-grid models).

        Returns
        -------
        xarray.Dataset
            On the run's ``curve`` dim: ``label`` (decoded along the run), ``label_raw``
            (per-curve argmax), ``probabilities`` (curve, phase; calibrated) and
            ``ood_score`` (> 1: unlike the training runs); attrs ``ood_flag`` and
            ``ood_median`` give the run's out-of-distribution verdict, ``onset_pressure`` /
            ``end_pressure`` (with ``_uncertainty``) the decoded transition.
        """
        predictor = self._fitted()
        ds = validate(X)
        out = predictor.predict(ds[INTENSITY].values, ds[TWO_THETA].values, wavelength_of(ds),
                                ds[PRESSURE].values)
        coords = {CURVE: ds[CURVE].values if CURVE in ds.coords else np.arange(
            ds.sizes[CURVE]), "phase": list(PHASES)}
        for name in (PRESSURE, TIME):
            coords[name] = (CURVE, ds[name].values)
        verdict = ood_verdict(out["ood_score"])
        attrs: dict[str, Any] = {"method": self.method_, "ood_flag": int(verdict["flag"]),
                                 "ood_median": float(verdict["score"])}
        if out["decoded"] is not None:
            transition = out["decoded"].to_dict()["transition"]
            for key in ("onset_pressure", "onset_uncertainty", "end_pressure",
                        "end_uncertainty"):
                if transition[key] is not None:
                    attrs[key] = float(transition[key])
        return xr.Dataset(
            {"label": (CURVE, out["label"].astype(np.int8), {
                "flag_values": "0 1 2", "flag_meanings": " ".join(PHASES)}),
             "label_raw": (CURVE, out["label_raw"].astype(np.int8)),
             "probabilities": ((CURVE, "phase"), out["probabilities"]),
             "ood_score": (CURVE, out["ood_score"])},
            coords=coords, attrs=attrs)

    def predict_proba(self, X: xr.Dataset) -> xr.DataArray:
        """Calibrated per-curve probabilities (curve, phase)."""
        return self.predict(X)["probabilities"]

    def score(self, X: xr.Dataset | Sequence[xr.Dataset], y: Any = None,
              sample_weight: Any = None) -> float:
        """Accuracy of the decoded labels against ``y`` (default: the runs' ``label``)."""
        runs = with_labels(X, y)
        hits = [self.predict(ds)["label"].values == ds[LABEL].values for ds in runs]
        mask = [ds[LABEL].values >= 0 for ds in runs]
        return float(np.concatenate([h[m] for h, m in zip(hits, mask, strict=True)]).mean())

    # ----------------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> Path:
        """Write the fitted model (tensors and plain values; no MLflow needed)."""
        path = Path(path)
        self._fitted()
        torch.save({"bundle": self.bundle_, "method": self.method_,
                    "n_labels": self.n_labels_}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> PhaseClassifier:
        """A classifier saved by :meth:`save` (loaded with ``weights_only=True``)."""
        saved = torch.load(Path(path), map_location="cpu", weights_only=True)
        return cls.from_bundle(saved["bundle"], method=saved.get("method"),
                               n_labels=saved.get("n_labels"))

    @classmethod
    def from_bundle(cls, bundle: dict[str, Any], method: str | None = None,
                    n_labels: int | None = None) -> PhaseClassifier:
        """Wrap a deployable bundle (e.g. a registered model's) as a fitted classifier;
        ``method`` defaults to the one the bundle records."""
        method = method or bundle.get("method")
        if method is None or method not in METHODS:
            raise ValueError(f"the bundle does not name a known method ({method!r}); pass "
                             f"method= one of {METHODS}")
        clf = cls(method=method, corpus=None,
                  preprocessing=Preprocessing.from_dict(bundle["preprocessing"]),
                  decoder=DecoderConfig(**bundle["decoder"]) if bundle.get("decoder") else None)
        clf.bundle_ = bundle
        clf.predictor_ = PhasePredictor(bundle)
        clf.method_ = method
        clf.corpus_ = bundle.get("corpus")
        clf.classes_ = np.arange(len(PHASES))
        clf.n_labels_ = n_labels
        return clf

    def _fitted(self) -> PhasePredictor:
        predictor = getattr(self, "predictor_", None)
        if predictor is None:
            raise RuntimeError("this PhaseClassifier is not fitted yet: call fit() first")
        return predictor


#: A run's attrs that state its sample's material, in the order they are read, and the
#: free-text descriptions read when none of them is given
MATERIAL_KEYS = ("material", "formula", "composition")
DESCRIPTION_KEYS = ("sample", "sample_name")


def named_transitions(runs: Sequence[xr.Dataset]) -> tuple[str, ...] | None:
    """The built-in transitions the runs name in their attrs, sorted; None if a run names
    none (:func:`~specflow.simulator.transitions.transitions_named`). Per run, the first
    non-empty one of :data:`MATERIAL_KEYS` decides (``Fe``, ``iron``, ``Fe0.95O``); a
    material it does not know, or several (``FeO + KCl``, with a warning saying how to
    choose), is none. Without them, a description of :data:`DESCRIPTION_KEYS` that starts
    with the sample (``Fe run 3``, ``FeO powder``; not ``Zr in NaCl``)."""
    names = set()
    for i, ds in enumerate(runs):
        key, text = next(((k, str(ds.attrs.get(k) or "").strip())
                          for k in (*MATERIAL_KEYS, *DESCRIPTION_KEYS)
                          if str(ds.attrs.get(k) or "").strip()), ("", ""))
        named = transitions_named(text, leading=key in DESCRIPTION_KEYS)
        if len(named) > 1:
            warnings.warn(f"run {ds.attrs.get('run_uid', i)!r}: attrs {key!r} = {text!r} "
                          f"names {', '.join(named)}; no corpus is chosen for it: say which, "
                          f"e.g. corpus='{named[0]}'", stacklevel=3)
        if len(named) != 1:
            return None
        names.add(named[0])
    return tuple(sorted(names)) if names else None


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
