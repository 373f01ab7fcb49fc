"""The evaluation protocol: pretrain on all curves (labels hidden), probe with a few labels,
score weighted precision/recall on the remaining labelled curves, per file and overall."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from specflow.learn.data import Curves, to_curves
from specflow.learn.metrics import classification_report
from specflow.learn.pretrain import EpochCallback, PretrainConfig, encode, pretrain, resolve_device
from specflow.learn.probe import ProbeConfig, select_labels, train_probe

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


def pick_probe_labels(curves: Curves, label_fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of the curves whose labels the probe sees: per run, stratified, spread
    through acquisition order (see :func:`select_labels`); runs without labels give none."""
    picked = []
    for r in np.unique(curves.run):
        idx = np.flatnonzero(curves.run == r)
        if (curves.label[idx] >= 0).any():
            picked.append(idx[select_labels(curves.label[idx], label_fraction,
                                            order=curves.order[idx], seed=seed)])
    if not picked:
        raise ValueError("no labelled curves: every file needs a 'label' variable with values ≥ 0")
    return np.concatenate(picked)


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
) -> dict[str, Any]:
    """Protocol on in-memory Datasets; ``method="raw"`` probes the min–max curves directly.

    ``n_points`` regrids all files onto a common grid of that many points (default: the
    config's, else the data's own grid, else the overlap of the files' ranges).
    """
    names = list(datasets)
    n_points = n_points or (config.n_points if config else None)
    curves = to_curves([datasets[k] for k in names], n_points=n_points)
    if method == "raw":
        h = curves.x
    else:
        cfg = config or default_config(method, epochs, seed, device)
        cfg.n_points = n_points
        result = pretrain([datasets[k] for k in names], cfg, on_epoch=on_epoch)
        h = encode(result.encoder, curves.x, device=cfg.device)
    label = curves.label
    train = pick_probe_labels(curves, label_fraction, seed)
    clf = train_probe(h[train], label[train], probe or ProbeConfig(seed=seed))
    pred = clf.predict(h)
    test = np.ones(len(label), bool)
    test[train] = False
    test &= label >= 0
    files = {}
    for r, name in enumerate(names):
        sel = test & (curves.run == r)
        if sel.any():
            files[name] = classification_report(label[sel], pred[sel])
    return {
        "method": METHOD_NAMES.get(method, method),
        "label_fraction": label_fraction,
        "n_labels": int(len(train)),
        "seed": seed,
        "files": files,
        "overall": classification_report(label[test], pred[test]),
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
