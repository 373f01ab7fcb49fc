"""Preprocessing on the canonical layout: normalisation, regridding, background removal, and
the one function that turns raw curves into model input (:func:`prepare_curves`), shared by
training and serving.

Model input lives on a momentum-transfer grid Q = 4π sin θ / λ (Å⁻¹): a reflection sits at the
same Q whatever the beam energy, so a model trained at one energy applies at another.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr
from pybaselines import Baseline

from specflow.data.kernels import despike_rows, snip_rows
from specflow.data.schema import CURVE, INTENSITY, TWO_THETA, two_theta_to_q, validate

DEFAULT_Q_GRID = (1.3, 6.0, 2048)  # Å⁻¹: first, last, points


def minmax(x: Any, eps: float = 1e-12, where: np.ndarray | None = None) -> Any:
    """Per-curve min–max normalisation to [0, 1] along the last axis (numpy or torch).

    The one normalisation of specflow: training, augmentation and serving all call it. A
    flat curve (range below ``eps``) maps to zeros instead of dividing by zero. ``where``
    (numpy, a mask broadcast to ``x``): scale over those bins only, 0 elsewhere.
    """
    if isinstance(x, np.ndarray) and where is not None:
        where = np.broadcast_to(where, x.shape)
        lo = np.where(where, x, np.inf).min(-1, keepdims=True)
        hi = np.where(where, x, -np.inf).max(-1, keepdims=True)
        return np.where(where, (x - lo) / np.maximum(hi - lo, eps), 0.0)
    if isinstance(x, np.ndarray):
        lo = x.min(-1, keepdims=True)
        return (x - lo) / np.maximum(x.max(-1, keepdims=True) - lo, eps)
    lo = x.amin(-1, keepdim=True)
    return (x - lo) / (x.amax(-1, keepdim=True) - lo).clamp_min(eps)


def normalize(ds: xr.Dataset) -> xr.Dataset:
    """Return a copy of ``ds`` with each curve min–max normalised to [0, 1]."""
    out = ds.copy()
    out[INTENSITY] = ds[INTENSITY].copy(data=minmax(ds[INTENSITY].values.astype(np.float32)))
    out.attrs["normalization"] = "per-curve min-max"
    return out


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity where the OS has one: Linux), else all."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


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


# --- cleaning -----------------------------------------------------------------------------------


def fill_gaps(x: np.ndarray) -> np.ndarray:
    """Curves (n, L) with NaN bins (detector gaps, masks) filled by linear interpolation
    between the nearest valid bins of the same curve (edges: the nearest valid value).

    Curves with the same gaps (a detector's modules: usually all of a run) are filled
    together, with :func:`numpy.interp`'s arithmetic, so the values are the same bits as
    filling them one by one."""
    x = np.array(x, dtype=np.float32, copy=True)
    bad = np.isnan(x)
    if not bad.any():
        return x
    rows = np.flatnonzero(bad.any(axis=1))
    empty = rows[bad[rows].all(axis=1)]
    if empty.size:
        raise ValueError(f"curve {int(empty[0])} has no data (all NaN)")
    packed = np.ascontiguousarray(np.packbits(bad[rows], axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()  # one key per mask
    _, first, group = np.unique(keys, return_index=True, return_inverse=True)
    for k, row in enumerate(rows[first]):
        members = rows[group.reshape(-1) == k][:, None]
        at, xp = np.flatnonzero(bad[row]), np.flatnonzero(~bad[row])
        x[members, at] = _interp_gaps(x, members, at, xp)
    return x


def _interp_gaps(x: np.ndarray, members: np.ndarray, at: np.ndarray, xp: np.ndarray
                 ) -> np.ndarray:
    """``np.interp(at, xp, x[m, xp])`` for every row m of ``members`` (a column) at once,
    with numpy's own arithmetic (float64 slope between the neighbouring valid bins, then
    slope × offset + left value; the end values beyond ``xp``), reading only the bins it
    needs: the same numbers."""
    j = np.searchsorted(xp, at, side="right") - 1  # xp[j] <= at < xp[j + 1]
    inside = (j >= 0) & (j < len(xp) - 1)
    out = np.where(j < 0, x[members, xp[0]], x[members, xp[-1]]).astype(np.float64)
    lo, hi = xp[j[inside]], xp[j[inside] + 1]
    f_lo = x[members, lo].astype(np.float64)
    slope = (x[members, hi].astype(np.float64) - f_lo) / (hi - lo)
    out[:, inside] = slope * (at[inside] - lo) + f_lo
    return out


def despike(x: np.ndarray, threshold: float = 8.0) -> np.ndarray:
    """Replace isolated one-bin spikes (hot pixels, cosmic rays) by their neighbours' mean.

    A bin is a spike when it stands more than ``threshold`` robust standard deviations (of the
    curve's point-to-point differences: 1.4826 × their median absolute deviation / √2) above
    *both* neighbours: a Bragg peak spans several bins, so its top never does. Curves with NaN
    are left as they are. Compiled (:func:`specflow.data.kernels.despike_rows`), float32.
    """
    x = np.array(x, dtype=np.float32, copy=True)
    if threshold <= 0 or x.shape[1] < 3:
        return x
    despike_rows(x, float(threshold))
    return x


def subtract_baseline(x: np.ndarray, half_window: int, method: str = "snip",
                      threads: int | None = None) -> np.ndarray:
    """Per-curve baseline removal with pybaselines (``snip``: peak-clipping, the usual choice
    for diffraction backgrounds; ``beads``: baseline estimation and denoising with sparsity,
    about 150x slower; any pybaselines method taking ``max_half_window``/``half_window``
    works). ``half_window`` in bins: wider than a peak, narrower than a hump; ``threads``:
    SNIP's (:func:`snip_baselines`)."""

    if method == "snip":  # the same algorithm, every curve at once (tests: equal to pybaselines)
        return (x - snip_baselines(x, half_window, threads=threads)).astype(np.float32)
    fitter = Baseline(np.arange(x.shape[1], dtype=float))
    try:
        fit = getattr(fitter, method)
    except AttributeError:
        raise ValueError(f"unknown pybaselines method {method!r}") from None
    if method == "beads":  # a high-pass cut-off instead of a window: a quarter-window period
        options = {"freq_cutoff": min(0.49, 1 / (4 * max(half_window, 1))), "lam_0": 0.5,
                   "lam_1": 5.0, "lam_2": 4.0, "asymmetry": 6.0}
    else:
        options = {"half_window": half_window}
    out = np.empty_like(x, dtype=np.float32)
    for i, y in enumerate(x):
        out[i] = y - fit(y.astype(float), **options)[0]
    return out


def snip_baselines(x: np.ndarray, half_window: int, chunk: int = 32,
                   threads: int | None = None) -> np.ndarray:
    """SNIP baselines of many curves (n, L) at once, float64: pybaselines' ``snip`` with its
    defaults (filter order 2, increasing windows 1..``half_window``, no smoothing, edges padded
    by a straight line fitted to the ``half_window`` end points) — the same numbers (tests),
    compiled (:func:`specflow.data.kernels.snip_rows`). Blocks of ``chunk`` rows are shared
    out to ``threads`` threads (default: up to 4 of the cores this process may use; the
    kernel releases the GIL)."""
    x = np.asarray(x, dtype=np.float64)
    n, length = x.shape
    if half_window < 1 or length < 3:
        raise ValueError(f"SNIP needs a half window ≥ 1 and curves of ≥ 3 points, got "
                         f"{half_window} and {length}")
    w = int(min(half_window, (length - 1) // 2))
    out = np.empty_like(x)
    starts = range(0, n, chunk)

    def block(s: int) -> None:
        snip_rows(_extrapolated(x[s:s + chunk], w), w, out[s:s + chunk])

    workers = min(threads or min(4, usable_cpus()), len(starts))
    if workers <= 1:
        for start in starts:
            block(start)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, starts))
    return out


def _extrapolated(y: np.ndarray, w: int) -> np.ndarray:
    """Rows padded by ``w`` points each side on the least-squares line through their ``w``
    end points (pybaselines' ``pad_edges`` in ``extrapolate`` mode)."""
    if w == 1:
        return np.concatenate((y[:, :1], y, y[:, -1:]), axis=1)
    t = np.arange(w, dtype=np.float64) - (w - 1) / 2  # centred positions of the end points
    def line(edge: np.ndarray, at: np.ndarray) -> np.ndarray:
        mean = edge.mean(1, keepdims=True)
        slope = ((edge - mean) @ t / (t @ t))[:, None]
        return mean + slope * at
    left = line(y[:, :w], t - w)
    right = line(y[:, -w:], t + w)
    return np.concatenate((left, y, right), axis=1)


# --- model input --------------------------------------------------------------------------------

Axis = Literal["q", "two_theta"]


@dataclass(frozen=True)
class Preprocessing:
    """How raw curves become model input; saved with every model so that training and serving
    prepare curves identically.

    ``axis="q"``: curves are moved onto ``grid`` in Q (Å⁻¹) using each run's wavelength;
    ``axis="two_theta"``: onto ``grid`` in degrees (``grid=None``: the data's own grid, the
    legacy behaviour). NaN gaps are filled, one-bin spikes removed (``despike`` robust σ, 0:
    off), ``intensity="sqrt"`` takes the square root of the (non-negative) counts, which
    makes Poisson noise the same size under weak and strong lines; then a pybaselines
    ``baseline`` is subtracted (half window ``baseline_width`` in grid units, None: off) and
    each curve is min–max scaled to [0, 1] over the bins its data cover; bins outside the
    data's range are 0. A curve must cover ``min_coverage`` of the grid.
    """

    axis: Axis = "q"
    grid: tuple[float, float, int] | None = DEFAULT_Q_GRID
    despike: float = 8.0
    baseline: str | None = "snip"
    baseline_width: float = 0.12
    min_coverage: float = 0.5
    intensity: str = "linear"

    def __post_init__(self) -> None:
        if self.intensity not in ("linear", "sqrt"):
            raise ValueError(f"unknown intensity scale {self.intensity!r}; use 'linear' or 'sqrt'")
        if self.axis not in ("q", "two_theta"):
            raise ValueError(f"unknown axis {self.axis!r}; use 'q' or 'two_theta'")
        if self.axis == "q" and self.grid is None:
            raise ValueError("a Q axis needs an explicit grid (first, last, points)")
        if self.grid is not None and not (self.grid[0] < self.grid[1] and self.grid[2] >= 8):
            raise ValueError(f"grid {self.grid} must be (first < last, points ≥ 8)")

    @classmethod
    def legacy(cls) -> Preprocessing:
        """Min–max on the data's own 2θ grid, nothing else (the paper's preprocessing)."""
        return cls(axis="two_theta", grid=None, despike=0.0, baseline=None)

    def to_dict(self) -> dict[str, Any]:
        """The fields; ``intensity`` only when not linear, so the fingerprints of corpora and
        networks prepared before it existed stay the same."""
        values = asdict(self)
        if values["intensity"] == "linear":
            del values["intensity"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        values = dict(values)
        if values.get("grid") is not None:
            lo, hi, n = values["grid"]
            values["grid"] = (float(lo), float(hi), int(n))
        return cls(**values)

    def model_grid(self, two_theta: np.ndarray | None = None) -> np.ndarray:
        """The model's grid: ``grid`` as points, or the data's own 2θ grid."""
        if self.grid is None:
            if two_theta is None:
                raise ValueError("this preprocessing keeps the data's grid: pass two_theta")
            return np.asarray(two_theta, dtype=float)
        return np.linspace(self.grid[0], self.grid[1], int(self.grid[2]))


@dataclass
class PreparedCurves:
    """Model input: curves (n, G) in [0, 1] on ``grid``; ``covered`` marks the grid points the
    data reach (outside them the curves are 0)."""

    x: np.ndarray
    grid: np.ndarray
    covered: np.ndarray

    @property
    def coverage(self) -> float:
        return float(self.covered.mean())


def prepare_curves(
    intensity: Any,
    two_theta: Any,
    config: Preprocessing | None = None,
    wavelength: float | None = None,
    grid: np.ndarray | None = None,
) -> PreparedCurves:
    """Raw curves (n, L) on a 2θ grid (deg) → model input on the config's grid.

    ``grid`` overrides the config's (a trained model's own grid points). Raises
    ``ValueError`` when a Q axis is asked for without a wavelength, or when the data cover
    less than ``min_coverage`` of the grid (naming both ranges).
    """
    cfg = config or Preprocessing()
    x = np.asarray(intensity, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    two_theta = np.asarray(two_theta, dtype=float)
    if x.ndim != 2 or x.shape[1] != two_theta.size:
        raise ValueError(f"curves of shape {x.shape} do not match a 2θ grid of "
                         f"{two_theta.size} points")
    if np.isinf(x).any():
        raise ValueError("curves contain inf values")
    if cfg.axis == "q":
        if wavelength is None:
            raise ValueError("a Q-grid model needs the beam wavelength or energy of the run "
                             "(attrs 'wavelength' in Å or 'energy' in keV)")
        axis = two_theta_to_q(two_theta, wavelength)
    else:
        axis = two_theta
    target = cfg.model_grid(two_theta) if grid is None else np.asarray(grid, dtype=float)
    covered = (target >= axis[0]) & (target <= axis[-1])
    if covered.mean() < cfg.min_coverage:
        unit = "Å⁻¹" if cfg.axis == "q" else "°"
        raise ValueError(
            f"the curves cover {axis[0]:.3g}–{axis[-1]:.3g} {unit}, only {covered.mean():.0%} "
            f"of the model's {target[0]:.3g}–{target[-1]:.3g} {unit} (at least "
            f"{cfg.min_coverage:.0%} needed)"
        )
    empty = np.flatnonzero(np.isnan(x).all(axis=1))
    if empty.size:
        raise ValueError(f"curve {int(empty[0])} has no data (all NaN)")

    def block(rows: slice) -> np.ndarray:
        on_grid = interp_curves(despike(fill_gaps(x[rows]), cfg.despike), axis, target)
        return finish_on_grid(on_grid, covered, cfg, target, threads=1)

    return PreparedCurves(_by_blocks(block, len(x), len(target)), target, covered)


#: Curves prepared together by one thread (:func:`prepare_curves`)
PREPARE_BLOCK = 64


def _by_blocks(block: Any, n: int, width: int, threads: int | None = None) -> np.ndarray:
    """``block(rows)`` (float32, (rows, width)) over blocks of :data:`PREPARE_BLOCK` rows,
    shared out to ``threads`` threads (default: up to 4 of the cores this process may use;
    numpy releases the GIL in the heavy steps). Every row is prepared on its own, so the
    result does not depend on the blocks."""
    out = np.empty((n, width), dtype=np.float32)
    blocks = [slice(s, min(s + PREPARE_BLOCK, n)) for s in range(0, n, PREPARE_BLOCK)]
    workers = min(threads or min(4, usable_cpus()), len(blocks))
    if workers <= 1:
        for rows in blocks:
            out[rows] = block(rows)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for rows, values in zip(blocks, pool.map(block, blocks), strict=True):
                out[rows] = values
    return out


def finish_on_grid(on_grid: np.ndarray, covered: np.ndarray, cfg: Preprocessing,
                   grid: np.ndarray, threads: int | None = None) -> np.ndarray:
    """The last steps of :func:`prepare_curves`, shared with rendered training curves
    (:mod:`specflow.identify.patterns`): ``cfg``'s baseline removal (SNIP on ``threads``
    threads), then min–max of each row over its ``covered`` bins (a mask for all rows, or
    one per row), 0 elsewhere."""
    if cfg.intensity == "sqrt":
        on_grid = np.sqrt(np.clip(on_grid, 0.0, None))
    if cfg.baseline:
        step = float(np.median(np.diff(grid)))
        on_grid = subtract_baseline(on_grid, max(2, round(cfg.baseline_width / step)),
                                    cfg.baseline, threads)
    return minmax(on_grid, where=covered).astype(np.float32)
