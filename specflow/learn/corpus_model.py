"""A network trained on a simulated corpus (:mod:`specflow.simulator.corpus`): what a model that
has seen many runs of a transition knows before any hand label.

:func:`train_on_corpus` trains one of the supervised architectures
(:mod:`specflow.models.supervised`) on every curve of the corpus with the simulator's true
labels (nuisance augmentation on half of each batch); :func:`corpus_network` does it once per
recipe, preprocessing and training setting: the network is cached, and the networks of the
built-in transitions' default corpora ship with specflow (``specflow/models/weights``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specflow.data.augment import make_augmentation
from specflow.data.preprocess import Preprocessing
from specflow.learn.data import Curves
from specflow.learn.supervised import SupervisedConfig, TrainedNetwork, train_network
from specflow.models.supervised import ARCHITECTURES, build_network
from specflow.simulator.corpus import Corpus, CorpusRecipe, build_corpus, cache_dir

log = logging.getLogger(__name__)
NETWORK_FORMAT = "specflow-corpus-network/1"
#: Networks trained on the default corpus of each built-in transition, shipped with specflow
SHIPPED = Path(__file__).resolve().parents[1] / "models" / "weights"


#: How the corpus network is trained: the CNN, 3,000 mini-batches of 64 curves, Adam, the
#: instrument augmentation with line broadening up to 6 bins (calibration stretch,
#: broadening, smooth intensity changes, spurious lines) on half of each batch
CORPUS_TRAINING = SupervisedConfig(arch="cnn", steps=3000, batch_size=64,
                                   augmentation="instrument-wide", augment_p=0.5, seed=0)
FINGERPRINTED = ("arch", "steps", "batch_size", "lr", "weight_decay", "augmentation",
                 "augment_p", "seed")


def corpus_training(**changes: Any) -> SupervisedConfig:
    """:data:`CORPUS_TRAINING` with ``changes`` (e.g. ``steps=200``)."""
    return replace(CORPUS_TRAINING, **changes)


def with_arch(training: SupervisedConfig, arch: str) -> SupervisedConfig:
    """``training`` for network ``arch``: the fraction head reads one curve's features, so
    a network that reads sequences of curves trains without it."""
    curve = ARCHITECTURES[arch].context == "curve"
    return replace(training, arch=arch,
                   fraction_weight=training.fraction_weight if curve else 0.0)


def training_fingerprint(training: SupervisedConfig) -> str:
    """sha256 of the training settings that change the network (not the device) and of what
    its augmentation group does (transforms and parameters): either changed, a new network
    is trained."""
    payload = {k: getattr(training, k) for k in FINGERPRINTED}
    if training.arch_kwargs:  # networks trained with the architecture's defaults keep theirs
        payload["arch_kwargs"] = dict(sorted(training.arch_kwargs.items()))
    if training.balance:  # likewise: networks trained on plain batches keep their names
        payload["balance"] = True
    if ARCHITECTURES[training.arch].context != "curve":  # what a sequence network reads
        payload["window"], payload["sequences"] = training.window, training.sequences
    if training.schedule != "constant":
        payload["schedule"] = training.schedule
    if training.fraction_weight:  # likewise: networks trained without the fraction head
        payload["fraction_weight"] = training.fraction_weight
    if training.init is not None:  # the starting encoder's weights, not its path
        payload["init"] = hashlib.sha256(Path(training.init).read_bytes()).hexdigest()
    payload["transforms"] = repr(make_augmentation(training.augmentation))
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def corpus_curves(corpus: Corpus) -> Curves:
    """The corpus as :class:`~specflow.learn.data.Curves` (every curve labelled)."""
    return Curves(x=corpus.x, grid=corpus.grid, run=corpus.run.astype(np.int64),
                  order=corpus.order.astype(np.int64), pressure=corpus.pressure.astype(float),
                  label=corpus.label.astype(np.int64), preprocessing=corpus.preprocessing,
                  fraction=corpus.fraction.astype(np.float32))


def network_name(recipe: CorpusRecipe, preprocessing: Preprocessing,
                 training: SupervisedConfig) -> str:
    """File name of the network ``training`` gives on ``recipe``'s corpus."""
    return (f"{recipe.name}-{recipe.fingerprint(preprocessing)[:12]}-"
            f"{training_fingerprint(training)[:8]}.pt")


def corpus_network(source: CorpusRecipe | Corpus, training: SupervisedConfig | None = None,
                   preprocessing: Preprocessing | None = None, device: str = "auto",
                   directory: Path | None = None) -> TrainedNetwork:
    """The network ``training`` gives on the corpus of ``source`` (a recipe or a built
    corpus): from the cache (``directory``, default :func:`~specflow.simulator.corpus.cache_dir`)
    or the networks shipped with specflow when trained before; else the corpus is built and
    the network trained and cached."""
    training = training or CORPUS_TRAINING
    if isinstance(source, Corpus):
        recipe, prep = source.recipe, source.preprocessing
    else:
        recipe, prep = source, preprocessing or Preprocessing()
    name = network_name(recipe, prep, training)
    cached = (directory or cache_dir()) / "networks" / name
    for path in (cached, SHIPPED / name):
        if path.exists():
            return load_network(path)
    log.warning("no network trained on the %s corpus yet: simulating it and training one "
                "(minutes, once; cached in %s)", recipe.name, cached.parent)
    corpus = source if isinstance(source, Corpus) else build_corpus(recipe, prep)
    trained = train_on_corpus(corpus, training, device)
    save_network(cached, trained, corpus.grid.size)
    return trained


def train_on_corpus(corpus: Corpus, training: SupervisedConfig | None = None,
                    device: str = "auto") -> TrainedNetwork:
    """Train ``training``'s network on every curve of ``corpus`` (its true labels)."""
    cfg = replace(training or CORPUS_TRAINING, device=device)
    curves = corpus_curves(corpus)
    return train_network(curves, np.arange(len(curves.x)), cfg)


def save_network(path: Path, trained: TrainedNetwork, length: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": NETWORK_FORMAT, "arch": trained.arch,
                "kwargs": dict(trained.arch_kwargs), "length": int(length),
                "state": {k: v.detach().cpu() for k, v in trained.network.state_dict().items()},
                "history": [float(v) for v in trained.history[::10]],
                "seconds": trained.seconds, "n_labels": trained.n_labels}, tmp)
    tmp.replace(path)
    return path


def load_network(path: Path) -> TrainedNetwork:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved.get("format") != NETWORK_FORMAT:
        raise ValueError(f"{path} is not a specflow corpus network")
    net = build_network(saved["arch"], saved["length"], **saved["kwargs"])
    net.load_state_dict(saved["state"])
    return TrainedNetwork(net.eval(), saved["arch"], saved["kwargs"], saved["history"],
                          float(saved["seconds"]), int(saved["n_labels"]))
