"""Per-run summary of predicted phases, from the sequence decoder: phases present, contiguous
segments, transition onset/end pressures with uncertainty (forward and reverse)."""

from __future__ import annotations

from typing import Any

import numpy as np

from specflow.learn.decode import Decoded, DecoderConfig, decode


def _boundary(decoded: Decoded, sweep: int, kind: str) -> dict[str, float] | None:
    b = next((b for b in decoded.boundaries if b.sweep == sweep and b.kind == kind), None)
    return None if b is None else {"pressure": b.pressure, "uncertainty": b.uncertainty,
                                   "probability": b.probability, "index": b.index}


def _sweep_transition(decoded: Decoded, sweep: int) -> dict[str, Any]:
    onset, end = _boundary(decoded, sweep, "onset"), _boundary(decoded, sweep, "end")
    if onset is None and end is not None:  # skipped straight to the other phase
        onset = end
    return {
        "detected": onset is not None,
        "direction": decoded.sweeps[sweep].direction if decoded.sweeps else None,
        "onset_pressure": onset and onset["pressure"],
        "onset_uncertainty": onset and onset["uncertainty"],
        "onset_pressure_err": onset and onset["uncertainty"],
        "onset_probability": onset and onset["probability"],
        "end_pressure": end and end["pressure"],
        "end_uncertainty": end and end["uncertainty"],
        "end_pressure_err": end and end["uncertainty"],
    }


def transition_summary(
    pressure: np.ndarray, probabilities: np.ndarray, decoder: DecoderConfig | None = None,
    decoded: Decoded | None = None,
) -> dict[str, Any]:
    """Phases present and where the transition starts and ends, along acquisition order.

    The run is decoded (:func:`specflow.learn.decode.decode`, or ``decoded`` as given): the
    main transition is the first sweep's (compression, or decompression for a pure
    decompression run); a run that goes up then down also gets ``reverse`` (the first
    following sweep's). Pressures in GPa with 1σ uncertainty (``*_pressure_err``); ``None``
    where nothing was found.
    """
    p = np.asarray(pressure, dtype=float)
    probs = np.asarray(probabilities, dtype=float)
    decoded = decoded if decoded is not None else decode(probs, p, decoder)
    labels = decoded.labels
    main = _sweep_transition(decoded, 0)
    reverse = _sweep_transition(decoded, 1) if len(decoded.sweeps) > 1 else None
    transition = {**main, "units": "GPa", "readback_noise": decoded.readback_noise,
                  "reverse": reverse}
    return {
        "phases": sorted(int(v) for v in np.unique(labels)),
        "phase_counts": {str(c): int((labels == c).sum()) for c in range(probs.shape[1])}
        if probs.ndim == 2 else {},
        "direction": decoded.direction,
        "pressure_range": [float(p.min()), float(p.max())] if p.size else [None, None],
        "segments": [{"label": int(lab), "start": int(a), "stop": int(b)}
                     for lab, a, b in decoded.segments],
        "transition": transition,
    }
