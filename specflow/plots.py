"""Figures: the paper's contour map of a run with per-curve phase labels beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from specflow.data.preprocess import minmax
from specflow.data.schema import INTENSITY, LABEL, PHASE_NAMES, PRESSURE, TWO_THETA

LABEL_COLORS = ["#bdbdbd", "#1f77b4", "#ff7f0e", "#d62728"]  # unknown, before, during, after


def _label_strip(ax, labels: np.ndarray, y: np.ndarray, title: str) -> None:
    cmap = ListedColormap(LABEL_COLORS)
    norm = BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5], cmap.N)
    ax.pcolormesh([0, 1], _edges(y), (labels[:, None]).astype(float), cmap=cmap, norm=norm)
    ax.set_xticks([])
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelleft=False)


def _edges(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    if len(y) == 1:
        return np.array([y[0] - 0.5, y[0] + 0.5])
    mid = (y[1:] + y[:-1]) / 2
    return np.concatenate([[2 * y[0] - mid[0]], mid, [2 * y[-1] - mid[-1]]])


def contour_figure(
    ds: xr.Dataset,
    predicted: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    y_axis: str = "curve",
    title: str | None = None,
):
    """Contour map (curve index or pressure vs 2θ) with given and predicted labels beside it.

    ``predicted`` (n,) labels and ``probabilities`` (n, 3) are optional model outputs; the
    ``label`` variable of ``ds`` (if any) is drawn as the reference strip.
    """
    intensity = minmax(ds[INTENSITY].values.astype(np.float32))
    n = intensity.shape[0]
    if y_axis == "pressure":
        order = np.argsort(ds[PRESSURE].values, kind="stable")
        y = ds[PRESSURE].values[order]
        y_label = "pressure (GPa)"
    elif y_axis == "curve":
        order = np.arange(n)
        y = order.astype(float)
        y_label = "curve index (acquisition order)"
    else:
        raise ValueError("y_axis must be 'curve' or 'pressure'")
    if y_axis == "pressure" and np.any(np.diff(y) <= 0):
        y = y + np.arange(n) * 1e-9  # ties in readback pressure: keep order, stay monotone
    strips = [("labels", ds[LABEL].values)] if LABEL in ds else []  # given or true
    if predicted is not None:
        strips.append(("pred.", np.asarray(predicted)))
    width_ratios = [12] + [0.7] * len(strips) + ([2.5] if probabilities is not None else [])
    fig = Figure(figsize=(8 + len(width_ratios) * 0.6, 6))  # no pyplot: no global backend
    axes = fig.subplots(1, len(width_ratios), sharey=True,
                        gridspec_kw={"width_ratios": width_ratios, "wspace": 0.05})
    axes = np.atleast_1d(axes)
    mesh = axes[0].pcolormesh(
        ds[TWO_THETA].values, y, intensity[order],
        shading="nearest", cmap="viridis", rasterized=True,
    )
    axes[0].set_xlabel("2θ (deg)")
    axes[0].set_ylabel(y_label)
    if title or ds.attrs.get("sample"):
        axes[0].set_title(title or f"{ds.attrs.get('sample')}  ({n} curves)")
    fig.colorbar(mesh, ax=axes.tolist(), orientation="horizontal", pad=0.1, fraction=0.04,
                 label="normalised intensity")
    for ax, (name, labels) in zip(axes[1:], strips, strict=False):
        _label_strip(ax, np.asarray(labels)[order], y, name)
    if probabilities is not None:
        ax = axes[-1]
        probs = np.asarray(probabilities)[order]
        for k in range(probs.shape[1]):
            ax.plot(probs[:, k], y, color=LABEL_COLORS[k + 1], lw=1, label=PHASE_NAMES[k])
        ax.set_xlim(0, 1)
        ax.set_title("p(phase)", fontsize=9)
    handles = [Rectangle((0, 0), 1, 1, color=LABEL_COLORS[k + 1]) for k in PHASE_NAMES]
    fig.legend(handles, [f"{k} {v}" for k, v in PHASE_NAMES.items()], loc="upper right",
               ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(0.98, 1.0))
    return fig


def save_contour(ds: xr.Dataset, path: str | Path, **kwargs) -> Path:
    """Draw :func:`contour_figure` and save it (PNG/PDF/SVG by suffix)."""
    fig = contour_figure(ds, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
