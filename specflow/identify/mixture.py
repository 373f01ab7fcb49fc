"""Two phases at once: how much of a curve's diffracted intensity each phase gives.

During a transition both phases diffract. :func:`phase_shares` finds, for each curve, each
phase's best stretch within the compression window (the library matcher's scan), renders the
two references strained that way and prepared like the curve, and fits the curve on the bins
it covers as a non-negative sum of the two (scipy's NNLS). The **share** of the second phase
is its part of the fitted integrated intensity. It follows the volume fraction only as far as
the two phases scatter alike per volume (true for polymorphs of one compound to within their
structure factors), and texture moves it; the benchmark measures how closely.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.optimize import nnls

from specflow.data.schema import CURVE, PRESSURE
from specflow.identify.matching import LibraryMatcher
from specflow.identify.patterns import clean_curves, q_grid
from specflow.identify.reference import ReferenceLibrary


def phase_shares(library: ReferenceLibrary, ds: xr.Dataset, first: str, second: str,
                 baseline: str | None = "snip") -> xr.Dataset:
    """Per curve of ``ds``: ``share`` of ``second`` (0–1) in the fitted intensity of the two
    library phases ``first`` and ``second`` (names), ``fit`` (R² of the two-phase fit on the
    covered bins) and each phase's ``strain`` (Q scale − 1 against its reference), on the
    ``curve`` dimension with the run's pressure."""
    if first == second:
        raise ValueError("phase_shares needs two different phases")
    pair = [library.entries[library.index(first)], library.entries[library.index(second)]]
    matcher = LibraryMatcher(ReferenceLibrary(pair), baseline)
    prepared = matcher.prepared(ds)
    _, strain = matcher.scan(prepared.x, prepared.covered, ds[PRESSURE].values)
    grid, prep = q_grid(), matcher.preprocessing()
    n = len(prepared.x)
    covered = np.broadcast_to(prepared.covered, prepared.x.shape)
    share, fit = np.full(n, np.nan), np.full(n, np.nan)
    for i in range(n):
        refs = clean_curves([(e.q * (1 + strain[i, j]), e.intensity)
                             for j, e in enumerate(pair)], grid, prep)
        bins = covered[i]
        design, y = refs[:, bins].T.astype(float), prepared.x[i, bins].astype(float)
        weights, _ = nnls(design, y)
        parts = weights * design.sum(0)
        if parts.sum() > 0:
            share[i] = parts[1] / parts.sum()
        residual = y - design @ weights
        total = ((y - y.mean()) ** 2).sum()
        fit[i] = 1 - (residual ** 2).sum() / total if total > 0 else np.nan
    return xr.Dataset(
        {"share": (CURVE, share, {"long_name": f"share of {second}"}),
         "fit": (CURVE, fit, {"long_name": "R² of the two-phase fit"}),
         "strain": ((CURVE, "phase"), strain.astype(float))},
        coords={PRESSURE: (CURVE, ds[PRESSURE].values), "phase": [first, second]},
        attrs={"first": first, "second": second, "library_version": library.version})
