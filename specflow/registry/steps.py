"""The MLflow-tracked training steps: load data, pretrain, probe, log the deployable model.

These wrap :mod:`specflow.learn` (which knows nothing of MLflow) with parameter, metric,
figure and dataset-fingerprint logging. They log into the active MLflow run.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from tiled.client import from_uri
from tiled.queries import Key

import specflow
from specflow.data.fingerprint import refuse_training_runs, run_fingerprint
from specflow.data.labels import LabelSpec
from specflow.data.preprocess import Preprocessing
from specflow.data.sources import find_runs, read_run
from specflow.ingest.catalog import parse_key_values, search
from specflow.ingest.reader import run_to_dataset
from specflow.learn.classifier import PhaseClassifier
from specflow.learn.data import to_curves, wavelength_of
from specflow.learn.evaluate import (
    even_labels,
    masked_labels,
    pick_probe_labels,
    run_probabilities,
)
from specflow.learn.metrics import classification_report, cluster_scores, plot_embedding
from specflow.learn.names import SSL_METHODS, SUPERVISED_METHODS
from specflow.learn.predictor import PhasePredictor
from specflow.learn.pretrain import load_checkpoint, pretrain
from specflow.learn.probe import ProbeConfig
from specflow.learn.supervised import SupervisedConfig
from specflow.plots import contour_figure
from specflow.registry.encoder import load_registered_encoder
from specflow.registry.promotion import (
    PromotionRefused,
    log_phase_model,
    promote,
    register,
    registration_tags,
)
from specflow.registry.tracking import (
    DEFAULT_ALIAS,
    DEFAULT_MODEL_NAME,
    configure_tracking,
    ensure_experiment,
)
from specflow.registry.uris import resolve_version
from specflow.simulator.corpus import CorpusRecipe

CHECKPOINT_ARTIFACT = "checkpoint/pretrain.pt"


@dataclass
class TrainingData:
    """Spectra runs plus what identifies them (file sha256 or Tiled run uids)."""

    datasets: list[xr.Dataset]
    names: list[str]
    fingerprints: dict[str, str]


def load_files(values: Sequence[str | Path], labels: LabelSpec | None = None,
               **options: Any) -> TrainingData:
    """Read the runs ``values`` name (files, folders, globs: :func:`find_runs`), labelled from
    ``labels`` when given, and fingerprint each by content hash; ``options`` go to the reader
    (``energy_kev``, ``wavelength``, ``radial_unit``)."""
    sources = find_runs(values)
    if not sources:
        raise ValueError("no data files given")
    fingerprints: dict[str, str] = {}
    for src in sources:  # keyed by file or folder name; by the path when two share a name
        key = src.location.name
        fingerprints[key if key not in fingerprints else str(src.location)] = src.sha256()
    return TrainingData([read_run(src, labels, **options) for src in sources],
                        [src.name for src in sources], fingerprints)


def load_tiled(
    uri: str,
    api_key: str | None = None,
    runs: Sequence[str] = (),
    query: Sequence[str] = (),
    layout: str | None = None,
) -> TrainingData:
    """Read Tiled runs by uid and/or ``key=value`` metadata queries (``start.sample=Fe``);
    ``layout``: how their curves are stored (:data:`specflow.ingest.reader.LAYOUTS`)."""
    client = from_uri(uri, api_key=api_key)
    uids = list(runs)
    if query:
        conditions = [Key(k) == v for k, v in parse_key_values(query).items()]
        node = search(client, *conditions)  # keys exactly as given
        uids += [uid for uid in node if uid not in uids]
    if not uids:
        raise ValueError("no Tiled runs selected: give run uids or a query that matches")
    datasets = [run_to_dataset(client[uid], layout=layout) for uid in uids]
    return TrainingData(datasets, uids, {uid: f"tiled:{uid}" for uid in uids})


def git_commit() -> str | None:
    """Commit of the specflow source tree, when it is a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(specflow.__file__).parent,
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def tag_key(name: str) -> str:
    """``name`` reduced to what MLflow accepts in a tag key (letters, digits, ``_-./ ``)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name).strip() or "_"


def log_provenance(data: TrainingData) -> None:
    """Data fingerprints, code version and sizes as tags/params of the active run.

    One tag ``data.<file or run>`` per input (its name made tag-safe; the value keeps the
    fingerprint), so the registry records exactly which runs went in.
    """
    tags: dict[str, str] = {}
    for name, value in data.fingerprints.items():
        key, n = f"data.{tag_key(name)}", 2
        while key in tags:  # two inputs whose names reduce to the same key
            key, n = f"data.{tag_key(name)}.{n}", n + 1
        tags[key] = value
    for ds, name in zip(data.datasets, data.names, strict=True):  # the gate refuses these
        tags[f"data.content.{tag_key(name)}"] = run_fingerprint(ds)[:32]
        if ds.attrs.get("run_uid"):
            tags[f"data.uid.{tag_key(name)}"] = str(ds.attrs["run_uid"])
    tags["specflow.version"] = specflow.__version__
    commit = git_commit()
    if commit:
        tags["specflow.git_commit"] = commit
    mlflow.set_tags(tags)
    mlflow.log_params({"n_runs": len(data.datasets),
                       "n_curves": sum(ds.sizes["curve"] for ds in data.datasets)})


def pretrain_step(data: TrainingData, config, progress: bool = True) -> Any:
    """Pretrain with per-epoch metrics, loss figure and checkpoint logged to the active run
    (and a progress bar on the terminal unless ``progress=False``)."""
    mlflow.log_params({f"pretrain.{k}": v for k, v in asdict(config).items() if k != "extra"})
    with Progress(TextColumn(f"pretraining {config.method}"), BarColumn(),
                  MofNCompleteColumn(), TextColumn("epochs"), disable=not progress,
                  transient=True) as bar:
        task = bar.add_task("epochs", total=config.epochs)

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            mlflow.log_metrics({f"pretrain.{k}": float(v) for k, v in metrics.items()},
                               step=epoch)
            bar.advance(task)

        result = pretrain(data.datasets, config, on_epoch=on_epoch)
    with tempfile.TemporaryDirectory() as tmp:
        result.save(Path(tmp) / "pretrain.pt")
        mlflow.log_artifact(str(Path(tmp) / "pretrain.pt"), artifact_path="checkpoint")
        if result.history:
            fig = _loss_figure(result.history)
            mlflow.log_figure(fig, "figures/pretrain_losses.png")
    return result


def _loss_figure(history: list[dict[str, float]]):
    keys = [k for k in history[0] if k not in {"lr", "epoch_s"}]
    fig = Figure(figsize=(10, 3.5))
    axes = fig.subplots(1, 2)
    for k in keys:
        values = [h.get(k, np.nan) for h in history]
        (axes[1] if k.startswith("acc") else axes[0]).plot(values, label=k)
    axes[0].set(xlabel="epoch", ylabel="loss", title="pretext losses")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="pretext accuracies")
    for ax in axes:
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def load_pretrained(run_id: str):
    """The pretraining checkpoint logged by :func:`pretrain_step` in run ``run_id``, or the
    registered encoder ``run_id`` names as ``models:/<name>@<alias>`` (or ``/<version>``)."""
    if run_id.startswith("models:/"):
        return load_registered_encoder(run_id)
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=CHECKPOINT_ARTIFACT)
    return load_checkpoint(local)


def holdout_labels(curves: Any, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of ``fraction`` of each run's labelled curves, evenly spread in acquisition
    order (:func:`~specflow.learn.evaluate.even_labels`), to keep out of training and score
    the probe on."""
    out = []
    for r in np.unique(curves.run):
        idx = np.flatnonzero(curves.run == r)
        known = curves.label[idx] >= 0
        k = int(round(fraction * known.sum()))
        if k:
            out.append(idx[even_labels(curves.order[idx], known, k, seed)])
    return np.unique(np.concatenate(out)) if out else np.array([], dtype=int)


@dataclass
class ProbeResult:
    """What :func:`probe_step` logged: its metrics, the model's URI and the served predictor."""

    metrics: dict[str, float]
    model_uri: str
    predictor: PhasePredictor
    run_id: str | None = None  # set by :func:`probe_run`


def probe_step(
    result: Any,
    data: TrainingData,
    label_fraction: float | None = None,
    seed: int = 0,
    figures: int = 2,
    holdout: float = 0.0,
    method: str | None = None,
    corpus: Any = "auto",
) -> ProbeResult:
    """Fit the :class:`~specflow.learn.classifier.PhaseClassifier` on the given labels; log
    metrics, figures, the corpus recipe and the pyfunc model.

    ``result`` is a pretraining result (SSL methods: its encoder is probed); without one,
    ``method`` is the classifier's (``auto``: the network trained on the transition's
    simulated corpus when the runs name a built-in transition, else the linear probe on the
    curves). ``corpus`` is the classifier's (``auto``, None, a transition name or a recipe).

    Labels come from each dataset's ``label`` variable (-1: unknown). By default **every**
    given label is used; ``holdout`` keeps that fraction of them out (evenly spread per
    run) to report metrics. ``label_fraction`` is for fully labelled (simulated) runs: only
    that fraction is revealed, class-blind and evenly spaced, and the rest of the labelled
    curves score the model. With a corpus, zero labels are fine (``label_fraction=0``).
    """
    if result is not None:
        prep, device = result.config.preprocessing, result.config.device
        method = result.config.method
    else:
        prep, device = Preprocessing(), "auto"
        method = method or "auto"
    curves = to_curves(data.datasets, preprocessing=prep)
    label = curves.label
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    if label_fraction == 0:
        train = np.zeros(0, dtype=int)
    elif label_fraction is not None:
        train = pick_probe_labels(curves, label_fraction, seed)
    else:
        kept_out = holdout_labels(curves, holdout, seed)
        train = np.setdiff1d(np.flatnonzero(label >= 0), kept_out)
    clf = PhaseClassifier(method=method, corpus=corpus, preprocessing=prep, seed=seed,
                          device=device, encoder=result.encoder if result is not None else None)
    clf.fit(data.datasets, masked_labels(curves, train))
    predictor = clf.predictor_
    prob = run_probabilities(clf, data.datasets)
    test = (label >= 0) & ~np.isin(np.arange(len(label)), train)
    report = classification_report(label[test], prob[test].argmax(1)) if test.any() else {}
    metrics = {f"probe_{k}": float(v) for k, v in report.items() if k != "confusion"}
    metrics["probe_n_labels"] = float(len(train))
    if test.sum() > 10:
        h = predictor.features(curves.x[test]).cpu().numpy()
        metrics.update({f"cluster_{k}": v for k, v in
                        cluster_scores(h, label[test], seed=seed).items()})
    shown = label >= 0
    if shown.sum() > 5:
        with tempfile.TemporaryDirectory() as tmp:
            h = predictor.features(curves.x[shown]).cpu().numpy()
            plot_embedding(h, label[shown], Path(tmp) / "embedding.png", seed=seed)
            mlflow.log_artifact(str(Path(tmp) / "embedding.png"), artifact_path="figures")
    mlflow.log_params({"probe.features": clf.method_, "probe.seed": seed,
                       "probe.label_fraction": "all" if label_fraction is None
                       else label_fraction, "probe.holdout": holdout,
                       "probe.temperature": float(clf.bundle_.get("temperature", 1.0)),
                       "corpus": CorpusRecipe.from_dict(clf.corpus_).name if clf.corpus_
                       else "none"})
    if clf.training_log_ is None and clf.method_ in SUPERVISED_METHODS:  # trained on labels
        net = SupervisedConfig(arch=clf.method_, seed=seed)
        mlflow.log_params({f"supervised.{k}": v for k, v in asdict(net).items()
                           if k not in ("arch_kwargs", "seed", "device")})
    elif clf.training_log_ is None:
        probe = ProbeConfig(seed=seed)
        mlflow.log_params({"probe.solver": probe.solver, "probe.C": probe.C,
                           "probe.augment_copies": probe.augment_copies,
                           "probe.augmentation": probe.augmentation})
    if clf.corpus_:
        mlflow.log_dict(clf.corpus_, "corpus_recipe.json")
        mlflow.log_params({f"corpus.{k}": v for k, v in clf.corpus_.items()})
    if clf.training_log_:  # the corpus network's own training: settings and loss curve
        log = clf.training_log_
        mlflow.log_dict(log, "corpus_network_training.json")
        mlflow.log_params({f"corpus_network.{k}": v for k, v in log["training"].items()})
        now = int(time.time() * 1000)
        MlflowClient().log_batch(mlflow.active_run().info.run_id, metrics=[
            Metric("corpus_network.loss", float(loss), now, step)
            for step, loss in enumerate(log["loss"])] + [
            Metric("corpus_network.train_seconds", float(log["seconds"]), now, 0)])
    mlflow.log_metrics(metrics)
    if report:
        mlflow.log_dict(report, "probe_report.json")
    for r, (ds, name) in enumerate(zip(data.datasets[:figures], data.names, strict=False)):
        out = predictor.predict(ds["intensity"].values, ds["two_theta"].values,
                                wavelength_of(ds), ds["pressure"].values)
        fig = contour_figure(ds, predicted=out["label"], probabilities=out["probabilities"],
                             title=f"{ds.attrs.get('sample', name)}: predicted phases")
        mlflow.log_figure(fig, f"figures/contour_{r}_{name}.png")
    info = log_phase_model(clf.bundle_, method=clf.method_)
    mlflow.set_tag("specflow.model_uri", info.model_uri)
    return ProbeResult(metrics, info.model_uri, predictor)


def pretrain_run(training: TrainingData, config: Any, workdir: Path = Path("work"),
                 progress: bool = True) -> str:
    """The pretraining step in its own tracked run (data provenance, per-epoch metrics,
    loss figure, checkpoint); returns the run id that :func:`probe_run` takes."""
    with start_run(workdir) as active:
        log_provenance(training)
        set_step_tags(step="pretrain", method=config.method)
        pretrain_step(training, config, progress=progress)
        return active.info.run_id


def probe_run(
    pretrain_run_id: str,
    training: TrainingData,
    label_fraction: float | None = None,
    seed: int = 0,
    holdout: float = 0.0,
    workdir: Path = Path("work"),
) -> ProbeResult:
    """The probe step on the encoder of a pretraining run, in its own tracked run."""
    with start_run(workdir) as active:
        log_provenance(training)
        source = pretrain_run_id
        if source.startswith("models:/"):  # the version the alias names now, for lineage
            name, version, _, run_id = resolve_version(source)
            source = f"models:/{name}/{version}"
            mlflow.set_tag("pretrain_encoder_run", run_id)
        set_step_tags(step="probe", pretrain_run=source)
        out = probe_step(load_pretrained(pretrain_run_id), training, label_fraction, seed,
                         holdout=holdout)
        out.run_id = active.info.run_id
        return out


def register_run(run_id: str, name: str = DEFAULT_MODEL_NAME,
                 workdir: Path = Path("work")) -> str:
    """Register the model that a probe (or pipeline) run logged as a new version of ``name``,
    tagged with the run's metrics and provenance; returns the version."""
    configure_tracking(workdir, must_exist=True)
    model_uri = MlflowClient().get_run(run_id).data.tags.get("specflow.model_uri")
    if not model_uri:
        raise ValueError(f"run {run_id} logged no specflow model (not a probe run?)")
    return str(register(model_uri, name, registration_tags(run_id)).version)


def start_run(workdir: Path, experiment: str = "specflow") -> Any:
    """Configure the store under ``workdir`` and start an MLflow run (in ``experiment``,
    unless ``mlflow run`` already chose one); use as a context manager."""
    configure_tracking(workdir)
    if mlflow.active_run() is None and not os.environ.get("MLFLOW_RUN_ID"):
        ensure_experiment(experiment)
    return mlflow.start_run()


def set_step_tags(**tags: str) -> None:
    """``specflow.<key>`` tags on the active run (step, method, …)."""
    mlflow.set_tags({f"specflow.{k}": v for k, v in tags.items()})


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` did: the tracked run, the new version and the gate."""

    run_id: str
    model_uri: str
    name: str
    version: str
    metrics: dict[str, float]
    alias: str
    promoted: bool
    gate: dict[str, Any] | None  # promote()'s result when promoted
    refused: str | None  # why the alias stayed where it was


def run_pipeline(
    training: TrainingData,
    method: str,
    *,
    pretrain_config: Any = None,
    label_fraction: float | None = None,
    holdout: float = 0.0,
    seed: int = 0,
    corpus: Any = "auto",
    name: str = DEFAULT_MODEL_NAME,
    alias: str = DEFAULT_ALIAS,
    eval_datasets: Sequence[xr.Dataset] | None = None,
    workdir: Path = Path("work"),
    progress: bool = True,
    on_registered: Any = None,
) -> PipelineResult:
    """pretrain (SSL methods, with ``pretrain_config``) → probe or train a supervised model →
    register a new version of ``name`` → move ``alias`` to it if it passes the gate on
    ``eval_datasets`` (:func:`~specflow.registry.promotion.promote`), in one tracked run.
    ``on_registered(metrics, version)`` is called before the gate runs (a gate that fails
    with an error then leaves a registered version the caller has heard of)."""
    if method in SSL_METHODS and pretrain_config is None:
        raise ValueError(f"method {method!r} needs a pretraining config")
    if eval_datasets is not None:  # before any training: the gate must not hold a training run
        gate = {str(ds.attrs.get("run_uid") or ds.attrs.get("sample") or f"#{i}"): ds
                for i, ds in enumerate(eval_datasets)}
        refuse_training_runs({f"{n}": ds for n, ds in zip(training.names, training.datasets,
                                                          strict=True)},
                             {f"{k} (--eval-data)": ds for k, ds in gate.items()},
                             role="gate", option="--eval-data")
    with start_run(workdir) as active:
        log_provenance(training)
        set_step_tags(step="pipeline", method=method)
        result = (pretrain_step(training, pretrain_config, progress=progress)
                  if method in SSL_METHODS else None)
        out = probe_step(result, training, label_fraction, seed, holdout=holdout,
                         method=method, corpus=corpus)
        run_id = active.info.run_id
    version = str(register(out.model_uri, name, registration_tags(run_id)).version)
    if on_registered is not None:
        on_registered(out.metrics, version)
    try:
        gate, refused = promote(name, version, alias, eval_datasets), None
    except PromotionRefused as err:
        gate, refused = None, str(err)
    return PipelineResult(run_id, out.model_uri, name, version, out.metrics, alias,
                          refused is None, gate, refused)
