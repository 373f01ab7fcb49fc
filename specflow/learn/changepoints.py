"""Zero-label start: transition proposals from features alone (change points along a run).

Before any curve is labelled, the run's curves (or their embeddings) already tell where the
pattern changes. Per monotone pressure sweep (:func:`specflow.learn.decode.sweeps`), the
features are reduced with PCA and split into ``n_changes + 1`` contiguous segments by exact
least-squares segmentation (dynamic programming over cumulative sums), each segment a straight
line in pressure (peaks drift smoothly inside a phase). The change points are *candidates*:
besides the sample's onset and end, a real run changes where the pressure medium solidifies,
where the beam is topped up, where a membrane cell steps — so more candidates than the two
boundaries of a transition are proposed (default four per sweep) and
:func:`curves_to_label` turns them into a short list of curves to confirm by eye. How often a
true boundary is among them is measured in ``benchmarks/changepoints.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.decomposition import PCA

from specflow.learn.decode import sweeps

N_COMPONENTS = 8
N_CHANGES = 4


@dataclass(frozen=True)
class Proposal:
    """A proposed boundary: curve ``index`` (in the run) starts a new segment."""

    index: int
    pressure: float | None
    direction: str  # "up" (compression) or "down" (decompression)
    strength: float  # share of the sweep's feature variance explained by its split, 0..1

    def to_dict(self) -> dict:
        return asdict(self)


def segment(
    x: np.ndarray, n_changes: int = 2, min_size: int = 3, t: np.ndarray | None = None,
) -> tuple[list[int], float]:
    """Exact least-squares split of rows ``x`` (n, d) into ``n_changes + 1`` contiguous
    segments of ≥ ``min_size`` rows, each fitted by a straight line in ``t`` (default: the
    row index) — peaks drift smoothly with pressure inside a phase, so only a change of
    phase breaks the line. Returns (start indices of segments 2.., explained variance: 1 -
    SSE of the split / SSE of one line)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n_changes < 1:
        raise ValueError(f"n_changes must be >= 1, got {n_changes}")
    if n < (n_changes + 1) * min_size:
        raise ValueError(f"{n} curves cannot hold {n_changes + 1} segments of {min_size}")
    t = np.arange(n, dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64)
    t = (t - t.mean()) / (t.std() or 1.0)

    def csum(v: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(v, 0)])

    c1, ct, ctt = csum(np.ones(n)), csum(t), csum(t * t)
    cx, ctx, cxx = csum(x), csum(t[:, None] * x), csum((x * x).sum(1))

    def cost(i: np.ndarray, j: np.ndarray) -> np.ndarray:  # SSE of a line fit to rows i..j-1
        m, st, stt = c1[j] - c1[i], ct[j] - ct[i], ctt[j] - ctt[i]
        sx, stx = cx[j] - cx[i], ctx[j] - ctx[i]
        det = m * stt - st * st
        ok = det > 1e-9 * np.maximum(m, 1) ** 2
        safe = np.where(ok, det, 1.0)
        # projection onto span{1, t}: [sx stx] inv([[m st][st stt]]) [sx stx]^T, per column
        fit = ((stt * (sx * sx).sum(-1) - 2 * st * (sx * stx).sum(-1) + m * (stx * stx).sum(-1))
               / safe)
        flat = (sx * sx).sum(-1) / np.maximum(m, 1)  # a constant where t does not vary
        return cxx[j] - cxx[i] - np.where(ok, fit, flat)

    ends = np.arange(n + 1)
    best = np.full(n + 1, np.inf)
    best[min_size:] = cost(np.zeros(n + 1 - min_size, int), ends[min_size:])
    back = []
    for _ in range(n_changes):
        new = np.full(n + 1, np.inf)
        arg = np.zeros(n + 1, dtype=int)
        for j in range(min_size, n + 1):
            starts = np.arange(min_size, j - min_size + 1)
            if starts.size == 0:
                continue
            total = best[starts] + cost(starts, np.full(starts.size, j))
            k = int(np.argmin(total))
            new[j], arg[j] = total[k], starts[k]
        back.append(arg)
        best = new
    cuts, j = [], n
    for arg in reversed(back):
        j = int(arg[j])
        cuts.append(j)
    total = float(cost(np.array(0), np.array(n)))
    explained = 1.0 - float(best[n]) / total if total > 0 else 0.0
    return sorted(cuts), max(0.0, explained)


def propose_transitions(
    features: np.ndarray, pressure: np.ndarray | None = None, *,
    n_changes: int = N_CHANGES, n_components: int = N_COMPONENTS, min_size: int = 3,
) -> list[Proposal]:
    """Candidate boundaries per pressure sweep of one run, from features (n, d) in
    acquisition order (prepared curves or encoder embeddings)."""

    h = np.asarray(features, dtype=np.float64)
    if h.ndim != 2 or len(h) == 0:
        raise ValueError(f"features must be (n_curves, n_features), got shape {h.shape}")
    if pressure is not None and len(pressure) != len(h):
        raise ValueError(f"pressure has {len(pressure)} values, features {len(h)} rows")
    z = h - h.mean(0)
    k = max(1, min(n_components, len(h) - 1, h.shape[1]))
    z = PCA(k, random_state=0).fit_transform(z) if len(h) > 2 else z
    parts = sweeps(pressure) if pressure is not None else None
    spans = [(s.start, s.stop, s.direction) for s in parts] if parts else [(0, len(h), "up")]
    out = []
    for start, stop, direction in spans:
        changes = min(n_changes, (stop - start) // min_size - 1)
        if changes < 1:
            continue
        t = None if pressure is None else np.asarray(pressure[start:stop], dtype=float)
        cuts, explained = segment(z[start:stop], changes, min_size, t)
        for cut in cuts:
            i = start + cut
            out.append(Proposal(i, None if pressure is None else float(pressure[i]),
                                direction, round(explained, 4)))
    return out


def curves_to_label(proposals: list[Proposal], n_curves: int, count: int,
                    skip: np.ndarray | None = None) -> np.ndarray:
    """Up to ``count`` curve indices to confirm: each proposed boundary and its neighbours
    first (the curves that fix onset and end), then the middles of the segments."""
    taken = set() if skip is None else {int(i) for i in skip}
    order: list[int] = []
    for offset in (0, -1, 1, -3, 3):
        order += [p.index + offset for p in proposals]
    cuts = sorted({0, n_curves, *(p.index for p in proposals)})
    order += [(a + b) // 2 for a, b in zip(cuts[:-1], cuts[1:], strict=False)]
    order += list(np.linspace(0, n_curves - 1, max(count, 2)).round().astype(int))
    out: list[int] = []
    for i in order:
        if 0 <= i < n_curves and i not in taken:
            out.append(int(i))
            taken.add(int(i))
        if len(out) == count:
            break
    return np.array(out, dtype=int)
