"""How far a diamond-anvil cell can have shifted a reference pattern, and undoing a shift.

A phase at pressure P has its reflections at Q × (V(P_ref) / V(P))^(1/3) of its reference
lattice at P_ref. The sample's equation of state is unknown before it is identified, but every
solid lies between two bounds: none is softer than the alkali halides (KCl K0 ≈ 17.5 GPa) and
the samples of these experiments are not harder than the nitrides (AlN ≈ 250 GPa). So a curve
at pressure P can only match a reference entry within the **compression window**
:func:`compression_window` gives for (P, P_ref), widened by a slack for the reference
lattice's own error and non-hydrostatic stress. Identification scans that window by
**stretching** the measured curve back (:func:`stretch_curves`) instead of re-rendering the
library at every strain.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from specflow.simulator.eos import RATIO_RANGE, BirchMurnaghan3

#: Bulk moduli (GPa, K0' = 4) bounding the compression of any sample.
SOFT_K0, HARD_K0 = 15.0, 300.0
#: Q-scale slack on both sides: reference-lattice error, deviatoric stress, thermal expansion.
SLACK = 0.02
#: Q-scale − 1 window when a curve's pressure is unknown (NaN).
UNKNOWN_PRESSURE = (-0.02, 0.06)


@cache
def _bound(k0: float) -> tuple[BirchMurnaghan3, float, float]:
    eos = BirchMurnaghan3(1.0, k0, 4.0)
    return eos, float(eos.pressure(RATIO_RANGE[1])), float(eos.pressure(RATIO_RANGE[0]))


def _q_scale(k0: float, pressure: np.ndarray, reference: np.ndarray) -> np.ndarray:
    eos, p_min, p_max = _bound(k0)
    v = eos.volume(np.clip(pressure, p_min, p_max))
    v_ref = eos.volume(np.clip(reference, p_min, p_max))
    return np.cbrt(v_ref / v)


def compression_window(pressure: np.ndarray | None, n: int, reference_pressure: np.ndarray,
                       slack: float = SLACK) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi), each (n curves, entries): the Q-scale − 1 a curve at ``pressure`` (GPa, one
    per curve; None or NaN: unknown) can show relative to an entry whose lattice is at
    ``reference_pressure``. Between the hard and the soft bound, plus ``slack``; an unknown
    pressure gets :data:`UNKNOWN_PRESSURE`."""
    reference = np.asarray(reference_pressure, dtype=float)[None, :]
    p = np.full(n, np.nan) if pressure is None else np.asarray(pressure, dtype=float)
    if p.shape != (n,):
        raise ValueError(f"expected {n} pressures, got shape {p.shape}")
    known = np.isfinite(p)[:, None]
    p = np.where(np.isfinite(p), p, 0.0)[:, None]
    hard, soft = _q_scale(HARD_K0, p, reference), _q_scale(SOFT_K0, p, reference)
    lo = np.where(known, np.minimum(hard, soft) - 1 - slack, UNKNOWN_PRESSURE[0])
    hi = np.where(known, np.maximum(hard, soft) - 1 + slack, UNKNOWN_PRESSURE[1])
    return lo, hi


def stretch_curves(curves: np.ndarray, grid: np.ndarray, strain: float,
                   covered: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Curves on ``grid`` (Q) with a Q-scale ``1 + strain`` undone: row(Q) → row(Q (1 +
    strain)), edge values held beyond the grid (as the preparation does), and the mask of
    bins that still come from ``covered`` measured bins."""
    curves = np.asarray(curves, dtype=np.float32)
    source = grid * (1 + strain)
    j = np.clip(np.searchsorted(grid, source) - 1, 0, grid.size - 2)
    w = np.clip((source - grid[j]) / (grid[j + 1] - grid[j]), 0, 1).astype(np.float32)
    out = curves[:, j] * (1 - w) + curves[:, j + 1] * w
    inside = (source >= grid[0]) & (source <= grid[-1])
    base = np.ones(curves.shape, bool) if covered is None else np.broadcast_to(
        covered, curves.shape)
    mask = base[:, j] & base[:, j + 1] & inside
    return out, mask
