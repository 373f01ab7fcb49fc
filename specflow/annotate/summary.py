"""Per-run summary of predicted phases: phases present, transition onset/end with uncertainty."""

from __future__ import annotations

from typing import Any

import numpy as np

CONSECUTIVE = 3  # curves that must agree before a phase change counts
MIN_SWEEP_GPA = 1.0  # a pressure excursion smaller than this is not a decompression


def sustained_index(mask: np.ndarray, k: int = CONSECUTIVE) -> int | None:
    """First index where ``mask`` is True for ``k`` consecutive curves (fewer at the end)."""
    mask = np.asarray(mask, dtype=bool)
    k = max(1, min(k, mask.size))
    if mask.size == 0:
        return None
    run = np.convolve(mask.astype(int), np.ones(k, dtype=int), "valid")
    hits = np.flatnonzero(run == k)
    return int(hits[0]) if hits.size else None


def readback_scatter(pressure: np.ndarray) -> float:
    """Pressure readback noise (GPa): spread of second differences, robust to the ramp."""
    if pressure.size < 3:
        return 0.0
    d2 = np.diff(pressure, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6))


def crossing(pressure: np.ndarray, index: int | None, noise: float) -> dict[str, float] | None:
    """Pressure where the state changed just before curve ``index``, ± its uncertainty.

    The change happened between curves ``index - 1`` and ``index``: the midpoint, with half
    the gap between them and the readback noise added in quadrature.
    """
    if index is None:
        return None
    if index == 0:
        return {"pressure": float(pressure[0]), "uncertainty": float(noise), "index": 0}
    lo, hi = float(pressure[index - 1]), float(pressure[index])
    half_gap = abs(hi - lo) / 2
    return {"pressure": (lo + hi) / 2, "uncertainty": float(np.hypot(half_gap, noise)),
            "index": int(index)}


def _sweep(p: np.ndarray, probs: np.ndarray, reverse: bool, k: int, noise: float) -> dict:
    """Onset and end of the transition along one monotonic sweep."""
    toward, target = ((probs[:, 0] + probs[:, 1], probs[:, 0]) if reverse
                      else (probs[:, 1] + probs[:, 2], probs[:, 2]))
    # a sweep that starts already transformed has no onset inside it
    onset_i = sustained_index(toward >= 0.5, k)
    if onset_i is not None and onset_i == 0 and (toward[: k] >= 0.5).all():
        onset_i = None if (target[:k] >= 0.5).all() else 0
    end_i = sustained_index(target >= 0.5, k)
    onset = crossing(p, onset_i, noise)
    end = crossing(p, end_i, noise) if end_i is not None and end_i > 0 else None
    if onset is None and end is not None:
        onset = end
    return {
        "detected": onset is not None,
        "onset_pressure": onset and onset["pressure"],
        "onset_uncertainty": onset and onset["uncertainty"],
        "end_pressure": end and end["pressure"],
        "end_uncertainty": end and end["uncertainty"],
    }


def transition_summary(pressure: np.ndarray, probabilities: np.ndarray,
                       k: int = CONSECUTIVE) -> dict[str, Any]:
    """Phases present and where the transition starts and ends, in acquisition order.

    ``onset`` = pressure where p(during or after) first stays ≥ 0.5 for ``k`` curves, ``end``
    = where p(after) does. A run that goes up then down also gets ``reverse`` (the same on
    the way down, with before/during). A pure decompression reports its reverse transition
    as the main one. Pressures in GPa; ``None`` where nothing was found.
    """
    p = np.asarray(pressure, dtype=float)
    probs = np.asarray(probabilities, dtype=float)
    labels = probs.argmax(1) if probs.size else np.zeros(0, dtype=int)
    noise = readback_scatter(p)
    top = int(np.argmax(p)) if p.size else 0
    up, down = (p[top] - p[0] if p.size else 0.0), (p[top] - p[-1] if p.size else 0.0)
    direction = "compression"
    if down >= MIN_SWEEP_GPA and up >= MIN_SWEEP_GPA:
        direction = "compression+decompression"
    elif down >= MIN_SWEEP_GPA:
        direction = "decompression"
    forward = reverse = None
    if direction == "decompression":
        forward = _sweep(p, probs, True, k, noise)
    else:
        stop = top + 1 if direction != "compression" else p.size
        forward = _sweep(p[:stop], probs[:stop], False, k, noise)
        if direction != "compression":
            reverse = _sweep(p[top:], probs[top:], True, k, noise)
    transition = {**forward, "units": "GPa", "consecutive": k, "readback_noise": noise,
                  "reverse": reverse}
    return {
        "phases": sorted(int(v) for v in np.unique(labels)),
        "phase_counts": {str(c): int((labels == c).sum()) for c in range(probs.shape[1])}
        if probs.ndim == 2 else {},
        "direction": direction,
        "pressure_range": [float(p.min()), float(p.max())] if p.size else [None, None],
        "transition": transition,
    }
