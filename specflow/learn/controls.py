"""Control baselines every accuracy table carries: what a method must beat to be worth it.

* ``pressure``: a logistic regression on the recorded pressure alone (no spectrum looked at);
* ``neighbour``: the label of the nearest labelled curve in acquisition order (within a run),
  or at the nearest relative position of the labelled runs (on runs without labels);
* ``raw``: the linear probe on the preprocessed curves themselves;
* ``untrained``: the linear probe on a randomly initialised ConvSC encoder;
* ``reference``: the linear probe on the authors' released encoder, when its checkpoint is
  present in ``$SPECFLOW_REFERENCE_DIR``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from specflow.learn.probe import ProbeConfig, train_probe
from specflow.models.convsc import ConvSCEncoder, load_reference_encoder, reference_dir

CONTROLS = ("pressure", "neighbour", "raw", "untrained", "reference")
REFERENCE_FILE = "specrrmoco_feo_backbone.tar"


def reference_checkpoint() -> Path | None:
    """The released SpecRRMoco checkpoint (:func:`~specflow.models.convsc.reference_dir`),
    if present."""

    folder = reference_dir()
    path = None if folder is None else folder / REFERENCE_FILE
    return path if path is not None and path.exists() else None


def control_encoder(name: str, seed: int = 0) -> torch.nn.Module:
    """``untrained``: a seeded, randomly initialised encoder; ``reference``: the released one."""

    if name == "untrained":
        with torch.random.fork_rng(devices=[]):  # the global random state is left alone
            torch.manual_seed(seed)
            return ConvSCEncoder(init="pytorch").eval()
    if name == "reference":
        path = reference_checkpoint()
        if path is None:
            raise FileNotFoundError(f"no {REFERENCE_FILE} in $SPECFLOW_REFERENCE_DIR: set it "
                                    "to the folder holding the released checkpoint")
        return load_reference_encoder(path).eval()
    raise ValueError(f"{name!r} is not an encoder control; use 'untrained' or 'reference'")


def pressure_probabilities(
    pressure_train: np.ndarray, y_train: np.ndarray, pressure: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Phase probabilities (n, 3) from a logistic regression on pressure alone."""
    probe = train_probe(np.asarray(pressure_train, float)[:, None], y_train,
                        ProbeConfig(seed=seed))
    return probe.probabilities(np.asarray(pressure, float)[:, None])


def neighbour_labels(
    position_train: np.ndarray, y_train: np.ndarray, position: np.ndarray
) -> np.ndarray:
    """Label of the labelled curve nearest in ``position`` (ties: the earlier one)."""
    order = np.argsort(position_train, kind="stable")
    xs, ys = np.asarray(position_train, float)[order], np.asarray(y_train)[order]
    right = np.clip(np.searchsorted(xs, position), 0, len(xs) - 1)
    left = np.clip(right - 1, 0, len(xs) - 1)
    take_left = np.abs(position - xs[left]) <= np.abs(xs[right] - position)
    return np.where(take_left, ys[left], ys[right])


def one_hot(labels: np.ndarray, n_classes: int = 3) -> np.ndarray:
    """Labels as certain probabilities (n, n_classes)."""
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), np.asarray(labels, dtype=int)] = 1.0
    return out
