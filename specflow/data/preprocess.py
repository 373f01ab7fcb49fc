"""Preprocessing on the canonical layout: normalisation, regridding, background removal."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from specflow.data.schema import CURVE, INTENSITY, TWO_THETA, validate


def minmax(x: Any, eps: float = 1e-12) -> Any:
    """Per-curve min–max normalisation to [0, 1] along the last axis (numpy or torch)."""
    lo = x.min(-1, keepdims=True) if isinstance(x, np.ndarray) else x.amin(-1, keepdim=True)
    hi = x.max(-1, keepdims=True) if isinstance(x, np.ndarray) else x.amax(-1, keepdim=True)
    return (x - lo) / ((hi - lo) + eps)


def normalize(ds: xr.Dataset) -> xr.Dataset:
    """Return a copy of ``ds`` with each curve min–max normalised to [0, 1]."""
    out = ds.copy()
    out[INTENSITY] = ds[INTENSITY].copy(data=minmax(ds[INTENSITY].values.astype(np.float32)))
    out.attrs["normalization"] = "per-curve min-max"
    return out


def interp_curves(values: np.ndarray, grid: np.ndarray, new_grid: np.ndarray) -> np.ndarray:
    """Linear interpolation of curves (n, L) from ``grid`` onto ``new_grid``, vectorised.

    Points of ``new_grid`` outside ``grid`` take the nearest edge value.
    """
    grid = np.asarray(grid, dtype=float)
    new_grid = np.asarray(new_grid, dtype=float)
    right = np.clip(np.searchsorted(grid, new_grid), 1, len(grid) - 1)
    left = right - 1
    w = np.clip((new_grid - grid[left]) / (grid[right] - grid[left]), 0.0, 1.0)
    return (values[:, left] * (1 - w) + values[:, right] * w).astype(values.dtype, copy=False)


def regrid(ds: xr.Dataset, two_theta: np.ndarray) -> xr.Dataset:
    """Interpolate every curve onto a common 2θ grid (degrees).

    The new grid should lie inside the old one; a range that sticks out by more than one
    step raises ``ValueError`` instead of silently inventing data.
    """
    validate(ds)
    old = ds[TWO_THETA].values
    new = np.asarray(two_theta, dtype=float)
    step = float(np.median(np.diff(old)))
    if new[0] < old[0] - step or new[-1] > old[-1] + step:
        raise ValueError(
            f"target 2θ range {new[0]:.3f}–{new[-1]:.3f}° exceeds the data's "
            f"{old[0]:.3f}–{old[-1]:.3f}°"
        )
    if old.shape == new.shape and np.allclose(old, new):
        return ds
    values = interp_curves(ds[INTENSITY].values, old, new)
    out = ds.drop_vars(INTENSITY).drop_dims(TWO_THETA)
    out[INTENSITY] = ((CURVE, TWO_THETA), values)
    return out.assign_coords({TWO_THETA: (TWO_THETA, new, {"units": "deg"})})[
        [INTENSITY, *[v for v in ds.data_vars if v != INTENSITY]]
    ]


def remove_background(
    ds: xr.Dataset, method: str = "asls", **params: Any
) -> xr.Dataset:
    """Subtract a per-curve baseline fitted with pybaselines (``asls``, ``arpls``, ``snip``...).

    Defaults for ``asls`` follow the reference preprocessing: λ=1e5, p=0.002, 10 iterations.
    The fitted baselines are kept as variable ``background``.
    """
    from pybaselines import Baseline

    validate(ds)
    if method == "asls":
        params = {"lam": 1e5, "p": 0.002, "max_iter": 10, **params}
    fitter = Baseline(ds[TWO_THETA].values)
    try:
        fit = getattr(fitter, method)
    except AttributeError:
        raise ValueError(f"unknown pybaselines method {method!r}") from None
    curves = ds[INTENSITY].values
    background = np.empty_like(curves)
    for i, y in enumerate(curves):
        background[i] = fit(y, **params)[0]
    out = ds.copy()
    out[INTENSITY] = ds[INTENSITY].copy(data=(curves - background).astype(np.float32))
    out["background"] = ((CURVE, TWO_THETA), background.astype(np.float32))
    out.attrs["background_removal"] = f"pybaselines.{method}"
    return out
