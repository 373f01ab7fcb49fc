"""The evaluation protocol: pretrain on all curves (labels hidden), probe with a few labels,
score weighted precision/recall on the remaining labelled curves, per file and overall."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from specflow.learn.data import Curves, to_curves
from specflow.learn.metrics import classification_report
from specflow.learn.pretrain import EpochCallback, PretrainConfig, encode, pretrain, resolve_device
from specflow.learn.probe import ProbeConfig, active_labels, select_labels, train_probe

LABEL_STRATEGIES = ("spread", "suggest")
METHOD_NAMES = {"rrmoco": "SpecRRMoco", "rr": "SpecRR", "moco": "SpecMoco",
                "selftime": "SpecSelfTime", "raw": "raw data"}


def read_dataset(path: Path) -> xr.Dataset:
    """Read a spectra file with specflow's io module (NetCDF fallback: h5netcdf)."""
    try:
        from specflow.data.io import read_spectra
    except ImportError:  # pragma: no cover - io module missing
        return xr.open_dataset(path, engine="h5netcdf").load()
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


def pick_probe_labels(
    curves: Curves,
    label_fraction: float,
    seed: int = 0,
    strategy: str = "spread",
    h: np.ndarray | None = None,
    probe: ProbeConfig | None = None,
) -> np.ndarray:
    """Indices of the curves whose labels the probe sees; runs without labels give none.

    ``spread``: per run, stratified, spread through acquisition order (:func:`select_labels`).
    ``suggest``: the same number of labels, but only a minimal stratified set (≥ 1 per class
    of each run) is spread; the rest are revealed one at a time where the probe on features
    ``h`` is least sure (:func:`active_labels`), as when a scientist labels the curves
    specflow suggests.
    """
    if strategy not in LABEL_STRATEGIES:
        raise ValueError(f"unknown label strategy {strategy!r}; use one of {LABEL_STRATEGIES}")
    spread, initial = [], []
    for r in np.unique(curves.run):
        idx = np.flatnonzero(curves.run == r)
        lab = curves.label[idx]
        if (lab >= 0).any():
            spread.append(idx[select_labels(lab, label_fraction, order=curves.order[idx],
                                            seed=seed)])
            initial.append(idx[select_labels(lab, n=0, order=curves.order[idx], seed=seed)])
    if not spread:
        raise ValueError("no labelled curves: every file needs a 'label' variable with values ≥ 0")
    if strategy == "spread":
        return np.concatenate(spread)
    if h is None:
        raise ValueError("the 'suggest' strategy needs features h to rank curves")
    return active_labels(h, curves.label, np.concatenate(initial),
                         sum(len(s) for s in spread), probe)


def evaluate_datasets(
    datasets: Mapping[str, xr.Dataset],
    method: str = "rrmoco",
    label_fraction: float = 0.03,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    config: PretrainConfig | None = None,
    probe: ProbeConfig | None = None,
    on_epoch: EpochCallback | None = None,
    n_points: int | None = None,
    label_strategy: str = "spread",
    augmentation: str | None = None,
) -> dict[str, Any]:
    """Protocol on in-memory Datasets; ``method="raw"`` probes the min–max curves directly.

    ``augmentation`` overrides the config's augmentation group.

    ``n_points`` regrids all files onto a common grid of that many points (default: the
    config's, else the data's own grid, else the overlap of the files' ranges). Scoring:
    :func:`score_probe`.
    """
    if method != "raw":
        config = config or default_config(method, epochs, seed, device)
        if augmentation:
            config = replace(config, augmentation=augmentation)
    curves, h = embed_datasets(datasets, config if method != "raw" else None, n_points,
                               on_epoch)
    out = score_probe(curves, h, list(datasets), label_fraction, seed, label_strategy, probe)
    return {"method": METHOD_NAMES.get(method, method), **out}


def embed_datasets(
    datasets: Mapping[str, xr.Dataset],
    config: PretrainConfig | None,
    n_points: int | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[Curves, np.ndarray]:
    """Curves on a common grid and their features: pretrain with ``config`` on all curves
    (labels hidden) and encode them, or, without a config, the min–max curves themselves."""
    runs = list(datasets.values())
    n_points = n_points or (config.n_points if config else None)
    curves = to_curves(runs, n_points=n_points)
    if config is None:
        return curves, curves.x
    config = replace(config, n_points=n_points)
    result = pretrain(runs, config, on_epoch=on_epoch)
    return curves, encode(result.encoder, curves.x, device=config.device)


def score_probe(
    curves: Curves,
    h: np.ndarray,
    names: list[str],
    label_fraction: float = 0.03,
    seed: int = 0,
    label_strategy: str = "spread",
    probe: ProbeConfig | None = None,
) -> dict[str, Any]:
    """Pick labels, fit the probe on features ``h`` and score it per run (``names``) and overall.

    Scores are on the labelled curves the probe did not see; ``all_curves`` scores every
    labelled curve, the probe's own training curves included. With ``suggest`` the held-out
    curves lack the hardest ones (they were given to the probe), so compare strategies on
    ``all_curves`` too.
    """
    label = curves.label
    probe = probe or ProbeConfig(seed=seed)
    train = pick_probe_labels(curves, label_fraction, seed, label_strategy, h, probe)
    pred = train_probe(h[train], label[train], probe).predict(h)
    test = np.ones(len(label), bool)
    test[train] = False
    test &= label >= 0
    files = {}
    for r, name in enumerate(names):
        sel = test & (curves.run == r)
        if sel.any():
            files[name] = classification_report(label[sel], pred[sel])
    return {
        "label_fraction": label_fraction,
        "label_strategy": label_strategy,
        "n_labels": int(len(train)),
        "seed": seed,
        "files": files,
        "overall": classification_report(label[test], pred[test]),
        "all_curves": classification_report(label[label >= 0], pred[label >= 0]),
    }


def evaluate(
    paths: list[Path],
    method: str = "rrmoco",
    label_fraction: float = 0.03,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    json_out: Path | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``method`` on spectra files; optionally write the result as JSON.

    Returns ``{"files": {name: {"precision", "recall", ...}}, "overall": {...}, ...}``.
    """
    paths = [Path(p) for p in paths]
    datasets = {}
    for p in paths:
        name = p.stem if p.stem not in datasets else str(p)
        datasets[name] = read_dataset(p)
    out = evaluate_datasets(datasets, method, label_fraction, epochs, seed, device, **kwargs)
    if json_out is not None:
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(out, indent=2))
    return out
