"""From canonical spectra Datasets to model input (shared preprocessing) and pretext targets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from specflow.data.preprocess import Preprocessing, prepare_curves
from specflow.data.schema import (
    INTENSITY,
    LABEL,
    PRESSURE,
    TIME,
    TRUE_LABEL,
    TWO_THETA,
    energy_kev,
    energy_to_wavelength,
)


@dataclass
class Curves:
    """Model input of several runs on one grid, with per-curve bookkeeping."""

    x: np.ndarray  # (N, G) float32 in [0, 1] (see specflow.data.preprocess.prepare_curves)
    grid: np.ndarray  # (G,) the model grid: Q in Å⁻¹ or 2θ in degrees
    run: np.ndarray  # (N,) run index
    order: np.ndarray  # (N,) acquisition rank within its run
    pressure: np.ndarray | None  # (N,) GPa, or None if unknown
    label: np.ndarray | None  # (N,) int, -1 unknown: what a labeller wrote
    truth: np.ndarray | None = None  # (N,) true labels where known (simulations), else label
    preprocessing: Preprocessing | None = None
    fraction: np.ndarray | None = None  # (N,) high-phase fraction where known (a corpus)

    def __post_init__(self) -> None:
        if self.truth is None:
            self.truth = self.label


def common_grid(datasets: list[xr.Dataset], n_points: int | None = None,
                crop_to_overlap: bool = False) -> np.ndarray:
    """The shared 2θ grid of the legacy preprocessing: the data's own grid if all runs agree
    (resampled to ``n_points`` when given). Runs covering different ranges are refused
    unless ``crop_to_overlap`` (then: the overlap, with ``n_points``), so no data are
    cropped silently; a fixed-grid :class:`Preprocessing` (the Q-grid default) needs none
    of this."""
    grids = [ds[TWO_THETA].values.astype(float) for ds in datasets]
    same = all(g.shape == grids[0].shape and np.allclose(g, grids[0]) for g in grids)
    if same and (n_points is None or n_points == grids[0].size):
        return grids[0]
    lo, hi = max(g[0] for g in grids), min(g[-1] for g in grids)
    if lo >= hi:
        raise ValueError("the runs' 2θ ranges do not overlap")
    step = max(float(np.median(np.diff(g))) for g in grids)
    spans = [(float(g[0]), float(g[-1])) for g in grids]
    if not crop_to_overlap and any(abs(a - lo) > step or abs(b - hi) > step for a, b in spans):
        shown = ", ".join(f"{a:.2f}–{b:.2f}°" for a, b in spans[:4])
        raise ValueError(
            f"the runs cover different 2θ ranges ({shown}); cropping to their overlap "
            f"{lo:.2f}–{hi:.2f}° would drop data: use a fixed-grid Preprocessing (the Q-grid "
            "default) or pass crop_to_overlap=True")
    return np.linspace(lo, hi, n_points or grids[0].size)


def wavelength_of(ds: xr.Dataset) -> float | None:
    """The run's wavelength (Å) from its ``wavelength`` or ``energy`` attr, else None."""
    try:
        return energy_to_wavelength(energy_kev(ds))
    except KeyError:
        return None


def to_curves(
    data: xr.Dataset | list[xr.Dataset],
    grid: np.ndarray | None = None,
    n_points: int | None = None,
    preprocessing: Preprocessing | None = None,
    crop_to_overlap: bool = False,
) -> Curves:
    """Prepare runs for a model (:func:`~specflow.data.preprocess.prepare_curves`) and stack
    them. ``grid`` (e.g. a trained model's) overrides the preprocessing's; without
    ``preprocessing``, the legacy min–max on a shared 2θ grid (the runs' own if they agree,
    else ``n_points`` on the overlap of their ranges)."""
    datasets = [data] if isinstance(data, xr.Dataset) else list(data)
    cfg = preprocessing or Preprocessing.legacy()
    if grid is None and cfg.grid is None:
        grid = common_grid(datasets, n_points, crop_to_overlap)
    xs, runs, orders, pressures, labels, truths = [], [], [], [], [], []
    for i, ds in enumerate(datasets):
        prepared = prepare_curves(ds[INTENSITY].values, ds[TWO_THETA].values, cfg,
                                  wavelength_of(ds), grid)
        grid = prepared.grid
        xs.append(prepared.x)
        n = prepared.x.shape[0]
        runs.append(np.full(n, i))
        t = ds[TIME].values if TIME in ds.coords else np.arange(n)
        orders.append(np.argsort(np.argsort(t, kind="stable"), kind="stable"))
        p = ds[PRESSURE].values.astype(float) if PRESSURE in ds.coords else np.full(n, np.nan)
        pressures.append(p)
        label = ds[LABEL].values.astype(int) if LABEL in ds else np.full(n, -1)
        labels.append(label)
        truths.append(ds[TRUE_LABEL].values.astype(int) if TRUE_LABEL in ds else label)
    pressure = np.concatenate(pressures)
    return Curves(
        x=np.concatenate(xs).astype(np.float32),
        grid=np.asarray(grid, dtype=float),
        run=np.concatenate(runs),
        order=np.concatenate(orders),
        pressure=pressure if np.isfinite(pressure).all() and np.ptp(pressure) > 0 else None,
        label=np.concatenate(labels),
        truth=np.concatenate(truths),
        preprocessing=cfg,
    )


def order_bins(run: np.ndarray, order: np.ndarray, n_bins: int = 5) -> np.ndarray:
    """T contiguous equal-count bins of acquisition order, per run."""
    out = np.empty(len(run), dtype=np.int64)
    for r in np.unique(run):
        sel = run == r
        out[sel] = (order[sel] * n_bins) // sel.sum()
    return out


def pressure_bins(pressure: np.ndarray, n_bins: int = 5) -> np.ndarray:
    """T equal-count pressure bins over all curves (pressure quantiles)."""
    rank = np.argsort(np.argsort(pressure, kind="stable"), kind="stable")
    return (rank * n_bins) // len(pressure)


EXTERNAL_TARGETS = ("auto", "order", "pressure")


def external_targets(curves: Curves, n_bins: int = 5, kind: str = "auto") -> np.ndarray:
    """External-variable targets: ``order`` bins per run, ``pressure`` bins, or ``auto``."""
    if kind == "pressure" or (kind == "auto" and curves.pressure is not None):
        if curves.pressure is None:
            raise ValueError("pressure bins requested but pressure is unknown")
        return pressure_bins(curves.pressure, n_bins)
    if kind not in {"order", "auto"}:
        raise ValueError(f"unknown external target kind {kind!r}")
    return order_bins(curves.run, curves.order, n_bins)
