"""Sequence-aware decoding of per-curve phase probabilities along a pressure run.

Curves are recorded in acquisition order while the pressure ramps. On compression the
high-pressure phase can only grow, so labels (0 before, 1 during, 2 after the transition) are
non-decreasing along an up-sweep and non-increasing along a down-sweep. :func:`decode` splits
the pressure path into monotone sweeps and runs a 3-state HMM whose allowed moves depend on
the sweep direction: Viterbi gives the labels, forward-backward the marginals and the
posterior distribution of each change point, hence onset/end pressures with uncertainties.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

Direction = Literal["up", "down"]
Kind = Literal["onset", "end"]

N_STATES = 3
MIN_PROB = 1e-6  # probabilities are clipped to this before taking logs
_NAMES = {"up": "compression", "down": "decompression"}
_DIR_INDEX = {"up": 0, "down": 1}

# (source states, target states) of each change, per sweep direction
_CHANGES: dict[tuple[str, str], tuple[tuple[int, ...], tuple[int, ...]]] = {
    ("up", "onset"): ((0,), (1, 2)),
    ("up", "end"): ((0, 1), (2,)),
    ("down", "onset"): ((2,), (0, 1)),
    ("down", "end"): ((1, 2), (0,)),
}


# --- sweeps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    """Curves ``[start, stop)`` along which the pressure moves monotonically in ``direction``."""

    start: int
    stop: int
    direction: Direction

    def __len__(self) -> int:
        return self.stop - self.start


def readback_noise(pressure: np.ndarray) -> float:
    """Pressure readback noise (GPa): robust spread of second differences, blind to the ramp."""
    p = np.asarray(pressure, dtype=float)
    if p.size < 3:
        return 0.0
    d2 = np.diff(p, 2)
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / np.sqrt(6))


def _check_pressure(pressure: np.ndarray) -> np.ndarray:
    p = np.asarray(pressure, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pressure must be 1-D (one value per curve), got shape {p.shape}")
    if not np.isfinite(p).all():
        bad = np.flatnonzero(~np.isfinite(p))
        raise ValueError(f"pressure has {bad.size} non-finite value(s) (NaN/inf), first at "
                         f"curve {int(bad[0])}; drop or interpolate them before decoding")
    return p


def _smooth(p: np.ndarray, min_reversal: float) -> np.ndarray:
    """Light smoothing for sweep detection: a 5-point median (glitches), then a running mean
    just wide enough that readback noise cannot fake a ``min_reversal`` excursion."""
    n = p.size
    if n < 3:
        return p.copy()
    s = median_filter(p, size=min(5, n - 1 + n % 2), mode="nearest")
    want = int(np.ceil((10 * readback_noise(p) / min_reversal) ** 2))
    width = min(max(5, min(want, n // 8)), n)
    return uniform_filter1d(s, size=width, mode="nearest")


def sweeps(pressure: np.ndarray, min_reversal: float = 1.0) -> list[Sweep]:
    """Split the pressure path into monotone sweeps (zig-zag on lightly smoothed pressure).

    A reversal counts only once the smoothed pressure has come back by ``min_reversal`` GPa
    from the last extreme, so readback noise, mDAC plateaus and small relaxations do not start
    new sweeps. A turning point (and a plateau held at it) belongs to the sweep that reaches
    it. A run that never moves by ``min_reversal`` is one ``"up"`` sweep by convention.
    """
    p = _check_pressure(pressure)
    if min_reversal <= 0:
        raise ValueError(f"min_reversal must be > 0 GPa, got {min_reversal}")
    n = p.size
    if n == 0:
        return []
    s = _smooth(p, min_reversal).tolist()
    tol = 0.1 * min_reversal  # a plateau at the turning point stays with the sweep reaching it
    lo = hi = 0
    trend = 0
    i = 1
    while i < n and trend == 0:  # direction of the first sweep
        if s[i] > s[hi]:
            hi = i
        if s[i] < s[lo]:
            lo = i
        if s[hi] - s[lo] >= min_reversal:
            trend = 1 if hi > lo else -1
        i += 1
    if trend == 0:
        return [Sweep(0, n, "up")]
    first = trend
    ext = hi if trend > 0 else lo
    pivots: list[int] = []
    for j in range(i, n):
        v = s[j]
        if (v - s[ext]) * trend > 0:
            ext = j
        elif (s[ext] - v) * trend >= min_reversal:
            last = j - 1
            while last > ext and (s[ext] - s[last]) * trend > tol:
                last -= 1
            pivots.append(last)
            trend, ext = -trend, j
    bounds = [0, *(k + 1 for k in pivots), n]
    dirs: list[Direction] = ["up", "down"] if first > 0 else ["down", "up"]
    return [Sweep(a, b, dirs[k % 2]) for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:],
                                                                       strict=True))]


# --- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecoderConfig:
    """HMM settings.

    ``switch_prob``: prior probability of a label change between consecutive curves (within
    the allowed direction, split evenly among the allowed targets); ``temperature``: per-curve
    probabilities are raised to ``1/T`` (``T > 1`` softens an overconfident classifier);
    ``min_reversal``: GPa a pressure reversal needs to start a new sweep.
    """

    switch_prob: float = 1e-3
    temperature: float = 1.0
    min_reversal: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.switch_prob < 1:
            raise ValueError(f"switch_prob must be in (0, 1), got {self.switch_prob}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not self.min_reversal > 0:
            raise ValueError(f"min_reversal must be > 0 GPa, got {self.min_reversal}")

    def undoing(self, calibration: float) -> DecoderConfig:
        """This decoder for probabilities calibrated with softmax temperature
        ``calibration``: it raises them back to that power (emissions ∝ p^calibration), i.e.
        decodes the sharper uncalibrated probabilities (chosen in an exploratory comparison on
        validation seeds, docs/benchmarks.md)."""
        return replace(self, temperature=self.temperature / calibration)


@dataclass
class Boundary:
    """One phase change in one sweep.

    ``index``: first curve after the change (Viterbi path); ``pressure``: midpoint of the
    recorded pressures of curves ``index - 1`` and ``index``; ``uncertainty`` (GPa): spread of
    the posterior change position mapped to pressure, readback noise and half the gap, in
    quadrature; ``probability``: posterior probability that the change happens in the sweep.
    """

    sweep: int
    direction: Direction
    kind: Kind
    index: int
    pressure: float
    uncertainty: float
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "pressure": self.pressure,
                "uncertainty": self.uncertainty, "probability": self.probability}


@dataclass
class Decoded:
    """Decoded run: Viterbi ``labels``, marginal ``posterior``, label ``segments``
    ``(label, start, stop)`` and per-sweep ``boundaries``."""

    labels: np.ndarray
    posterior: np.ndarray
    segments: list[tuple[int, int, int]]
    boundaries: list[Boundary]
    sweeps: list[Sweep] = field(default_factory=list)
    pressure: np.ndarray = field(default_factory=lambda: np.zeros(0))
    readback_noise: float = 0.0

    def onset(self, direction: Direction = "up") -> Boundary | None:
        """Onset of the first sweep in ``direction`` that has one (None if none does)."""
        return self._first("onset", direction)

    def end(self, direction: Direction = "up") -> Boundary | None:
        """End of the first sweep in ``direction`` that has one (None if none does)."""
        return self._first("end", direction)

    def _first(self, kind: Kind, direction: Direction) -> Boundary | None:
        if direction not in _DIR_INDEX:
            raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")
        return next((b for b in self.boundaries
                     if b.kind == kind and b.direction == direction), None)

    @property
    def direction(self) -> str:
        """``compression``, ``decompression``, ``compression+decompression``, ... ("none" if
        empty)."""
        return "+".join(_NAMES[s.direction] for s in self.sweeps) or "none"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: phases, segments, per-sweep onset/end, the main transition."""
        labels = self.labels
        p = self.pressure
        per_sweep = []
        for k, sw in enumerate(self.sweeps):
            found = {b.kind: b.to_dict() for b in self.boundaries if b.sweep == k}
            per_sweep.append({
                "sweep": k, "direction": sw.direction, "start": sw.start, "stop": sw.stop,
                "pressure_start": float(p[sw.start]), "pressure_stop": float(p[sw.stop - 1]),
                "onset": found.get("onset"), "end": found.get("end"),
            })
        # main transition: the first sweep with any change (onset/end from that sweep)
        main = next((s for s in per_sweep if s["onset"] or s["end"]), None)
        onset, end = (main["onset"], main["end"]) if main else (None, None)
        return {
            "n": int(labels.size),
            "phases": sorted(int(v) for v in np.unique(labels)),
            "phase_counts": {str(c): int((labels == c).sum()) for c in range(N_STATES)},
            "direction": self.direction,
            "pressure_range": [float(p.min()), float(p.max())] if p.size else [None, None],
            "units": "GPa",
            "readback_noise": self.readback_noise,
            "segments": [{"label": lab, "start": a, "stop": b} for lab, a, b in self.segments],
            "sweeps": per_sweep,
            "transition": {
                "detected": main is not None,
                "sweep": main["sweep"] if main else None,
                "direction": main["direction"] if main else None,
                "onset_pressure": onset and onset["pressure"],
                "onset_uncertainty": onset and onset["uncertainty"],
                "end_pressure": end and end["pressure"],
                "end_uncertainty": end and end["uncertainty"],
            },
        }


def _log_transitions(switch_prob: float) -> np.ndarray:
    """(2, 3, 3) log transition matrices for a step inside an up- and a down-sweep."""
    a = np.zeros((2, N_STATES, N_STATES))
    for d, step in ((0, 1), (1, -1)):
        for j in range(N_STATES):
            targets = [k for k in range(N_STATES) if (k - j) * step > 0]
            a[d, j, j] = 1.0 - switch_prob if targets else 1.0
            for k in targets:
                a[d, j, k] = switch_prob / len(targets)
    with np.errstate(divide="ignore"):
        return np.log(a)


def _viterbi(le: np.ndarray, log_a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Most probable path (max-plus in log space; plain floats beat numpy on 3 states)."""
    n = le.shape[0]
    trans, emit, dirs = log_a.tolist(), le.tolist(), d.tolist()
    back: list[tuple[int, int, int]] = [(0, 1, 2)] * n
    score = emit[0]
    for i in range(1, n):
        m, e = trans[dirs[i]], emit[i]
        best, new = [], []
        for k in range(N_STATES):
            c = [score[0] + m[0][k], score[1] + m[1][k], score[2] + m[2][k]]
            j = 0 if c[0] >= c[1] and c[0] >= c[2] else (1 if c[1] >= c[2] else 2)
            best.append(j)
            new.append(c[j] + e[k])
        back[i] = tuple(best)
        score = new
    path = np.empty(n, dtype=np.int64)
    s = int(np.argmax(score))
    for i in range(n - 1, -1, -1):
        path[i] = s
        s = back[i][s]
    return path


def _forward_backward(le: np.ndarray, log_a: np.ndarray,
                      d: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Log forward/backward messages and log evidence (uniform initial state).

    Runs the per-step normalised recursion (same numbers as log-sum-exp, no underflow) on
    plain floats and returns the messages in log form.
    """
    n = le.shape[0]
    trans, dirs = np.exp(log_a).tolist(), d.tolist()
    top = le.max(1)
    # a likelihood ratio below e^-600 is "impossible" anyway; the floor keeps every step's
    # normaliser positive however small the temperature
    emit = np.exp(np.maximum(le - top[:, None], -600.0)).tolist()
    alpha: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)] * n
    scale = [0.0] * n
    x0, x1, x2 = emit[0]
    scale[0] = s = x0 + x1 + x2
    a0, a1, a2 = alpha[0] = (x0 / s, x1 / s, x2 / s)
    for i in range(1, n):
        m, (e0, e1, e2) = trans[dirs[i]], emit[i]
        x0 = (a0 * m[0][0] + a1 * m[1][0] + a2 * m[2][0]) * e0
        x1 = (a0 * m[0][1] + a1 * m[1][1] + a2 * m[2][1]) * e1
        x2 = (a0 * m[0][2] + a1 * m[1][2] + a2 * m[2][2]) * e2
        scale[i] = s = x0 + x1 + x2
        a0, a1, a2 = alpha[i] = (x0 / s, x1 / s, x2 / s)
    beta: list[tuple[float, float, float]] = [(1.0, 1.0, 1.0)] * n
    b0 = b1 = b2 = 1.0
    for i in range(n - 1, 0, -1):
        m, (e0, e1, e2), s = trans[dirs[i]], emit[i], scale[i]
        y0, y1, y2 = e0 * b0, e1 * b1, e2 * b2
        b0 = (m[0][0] * y0 + m[0][1] * y1 + m[0][2] * y2) / s
        b1 = (m[1][0] * y0 + m[1][1] * y1 + m[1][2] * y2) / s
        b2 = (m[2][0] * y0 + m[2][1] * y1 + m[2][2] * y2) / s
        beta[i - 1] = (b0, b1, b2)
    log_scale = np.log(scale) + top
    log_scale[0] -= np.log(N_STATES)  # uniform initial state
    cum = np.cumsum(log_scale)
    with np.errstate(divide="ignore"):
        la = np.log(np.array(alpha)) + cum[:, None]
        lb = np.log(np.array(beta)) + (cum[-1] - cum)[:, None]
    return la, lb, float(cum[-1])


def _segments(labels: np.ndarray) -> list[tuple[int, int, int]]:
    if labels.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.r_[0, cuts]
    stops = np.r_[cuts, labels.size]
    return [(int(labels[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def _boundaries(labels: np.ndarray, xi: np.ndarray, p: np.ndarray, sws: list[Sweep],
                noise: float) -> list[Boundary]:
    """Onset/end of each sweep from the Viterbi path, with posterior spread and probability.

    ``xi[i - 1, j, k]`` = P(s_{i-1} = j, s_i = k). Within a sweep each change happens at most
    once, so its per-step probabilities form a (sub-)distribution over positions.
    """
    out = []
    for k, sw in enumerate(sws):
        steps = np.arange(max(sw.start, 1), sw.stop)
        if steps.size == 0:
            continue
        mids = (p[steps - 1] + p[steps]) / 2
        prev, cur = labels[steps - 1], labels[steps]
        for kind in ("onset", "end"):
            src, dst = _CHANGES[(sw.direction, kind)]
            hit = np.flatnonzero(np.isin(prev, src) & np.isin(cur, dst))
            if hit.size == 0:
                continue
            h = int(hit[0])
            w = xi[steps - 1][:, list(src)][:, :, list(dst)].sum((1, 2))
            prob = float(w.sum())
            # RMS of the posterior change pressure about the reported one (= std if unbiased)
            spread = (float(np.sqrt(np.sum(w * (mids - mids[h]) ** 2) / prob)) if prob > 0
                      else 0.0)
            half_gap = abs(float(p[steps[h]] - p[steps[h] - 1])) / 2
            out.append(Boundary(
                sweep=k, direction=sw.direction, kind=kind, index=int(steps[h]),
                pressure=float(mids[h]),
                uncertainty=float(np.sqrt(spread**2 + noise**2 + half_gap**2)),
                probability=min(1.0, prob),
            ))
    return out


def decode(probabilities: np.ndarray, pressure: np.ndarray,
           config: DecoderConfig | None = None) -> Decoded:
    """Direction-constrained HMM decoding of per-curve class probabilities along a run.

    ``probabilities`` (n, 3): per-curve posteriors of a classifier (used as scaled
    likelihoods, raised to ``1/T``, clipped at 1e-6); ``pressure`` (n,): recorded pressure in
    acquisition order. Along an up-sweep labels may only increase, along a down-sweep only
    decrease; each allowed change costs ``switch_prob`` per step. The first curve's label is
    free (uniform prior).
    """
    cfg = config or DecoderConfig()
    p = _check_pressure(pressure)
    probs = np.asarray(probabilities, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != N_STATES:
        raise ValueError(f"probabilities must have shape (n, {N_STATES}), got {probs.shape}")
    if probs.shape[0] != p.size:
        raise ValueError(f"probabilities has {probs.shape[0]} rows but pressure has "
                         f"{p.size} values")
    if not np.isfinite(probs).all():
        raise ValueError("probabilities contain non-finite values (NaN/inf)")
    n = p.size
    if n == 0:
        return Decoded(np.zeros(0, dtype=np.int64), np.zeros((0, N_STATES)), [], [], [], p, 0.0)
    sws = sweeps(p, cfg.min_reversal)
    d = np.zeros(n, dtype=np.intp)
    for sw in sws:
        d[sw.start:sw.stop] = _DIR_INDEX[sw.direction]
    le = np.log(np.clip(probs, MIN_PROB, None)) / cfg.temperature
    log_a = _log_transitions(cfg.switch_prob)
    labels = _viterbi(le, log_a, d)
    la, lb, logz = _forward_backward(le, log_a, d)
    with np.errstate(invalid="ignore"):  # a state no path reaches: alpha 0 (-inf) · beta inf
        post = np.nan_to_num(np.exp(la + lb - logz), nan=0.0)
        xi = np.nan_to_num(np.exp(la[:-1, :, None] + log_a[d[1:]]
                                  + (le[1:] + lb[1:])[:, None, :] - logz), nan=0.0)
    post /= post.sum(1, keepdims=True)
    noise = readback_noise(p)
    return Decoded(labels=labels, posterior=post, segments=_segments(labels),
                   boundaries=_boundaries(labels, xi, p, sws, noise), sweeps=sws,
                   pressure=p, readback_noise=noise)


def transition_indices(labels: np.ndarray, pressure: np.ndarray,
                       min_reversal: float = 1.0) -> dict[str, Any]:
    """Onset and end of the run's first sweep read off a label sequence (true or decoded):
    the index of the first curve after each change (None where the sweep has none), with
    ``sweep_stop`` (one past the sweep's last curve) and its ``direction``."""
    labels = np.asarray(labels)
    p = _check_pressure(pressure)
    out: dict[str, Any] = {"onset": None, "end": None, "sweep_stop": None, "direction": None}
    if labels.size < 2:
        return out
    sw = sweeps(p, min_reversal)[0]
    out["direction"], out["sweep_stop"] = sw.direction, sw.stop
    steps = np.arange(max(sw.start, 1), sw.stop)
    prev, cur = labels[steps - 1], labels[steps]
    for kind in ("onset", "end"):
        src, dst = _CHANGES[(sw.direction, kind)]
        hit = np.flatnonzero(np.isin(prev, src) & np.isin(cur, dst))
        if hit.size:
            out[kind] = int(steps[hit[0]])
    return out


def transition_pressures(labels: np.ndarray, pressure: np.ndarray,
                         min_reversal: float = 1.0) -> dict[str, Any]:
    """Onset and end pressure of the run's first sweep read off a label sequence (true or
    decoded labels), with the same definitions as :func:`decode`'s boundaries.

    ``None`` where the sweep has no such change; ``sweep_end`` is the pressure of the sweep's
    last curve, where a transition not seen by then would at the earliest happen.
    """
    p = _check_pressure(pressure)
    at = transition_indices(labels, p, min_reversal)
    out: dict[str, Any] = {"onset": None, "end": None, "sweep_end": None,
                           "direction": at["direction"]}
    if at["sweep_stop"] is None:
        return out
    out["sweep_end"] = float(p[at["sweep_stop"] - 1])
    for kind in ("onset", "end"):
        i = at[kind]
        if i is not None:
            out[kind] = float((p[i - 1] + p[i]) / 2)
    return out
