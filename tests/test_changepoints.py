"""Change-point proposals for a zero-label start."""

import numpy as np
import pytest

from specflow.learn.changepoints import curves_to_label, propose_transitions, segment


def test_segment_finds_exact_breaks_of_piecewise_lines():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 30, 120)
    x = np.stack([0.2 * t, -0.1 * t], 1)  # a smooth drift: no break by itself
    x[40:80] += [3.0, 1.0]
    x[80:] += [5.0, -2.0]
    cuts, explained = segment(x + 0.05 * rng.standard_normal(x.shape), 2, t=t)
    assert cuts == [40, 80] and explained > 0.9
    drift_only, low = segment(0.2 * t[:, None] + 0.05 * rng.standard_normal((120, 1)), 2, t=t)
    assert low < 0.2  # a run without a transition: the split explains little
    with pytest.raises(ValueError, match="segments"):
        segment(x[:5], 2, min_size=3)


def test_proposals_per_sweep_and_curves_to_confirm():
    rng = np.random.default_rng(1)
    p = np.concatenate([np.linspace(1, 30, 90), np.linspace(30, 2, 60)])
    phase = np.where(p > 15, 1.0, 0.0)
    phase[90:] = np.where(p[90:] > 8, 1.0, 0.0)  # hysteresis on the way down
    h = np.stack([phase, 0.02 * p, 1 - phase], 1) + 0.05 * rng.standard_normal((150, 3))
    props = propose_transitions(h, p, n_changes=2)
    ups = [q.index for q in props if q.direction == "up"]
    downs = [q.index for q in props if q.direction == "down"]
    up_true = int(np.flatnonzero(p[:90] > 15)[0])
    down_true = 90 + int(np.flatnonzero(p[90:] <= 8)[0])
    assert min(abs(i - up_true) for i in ups) <= 2
    assert min(abs(i - down_true) for i in downs) <= 2
    picked = curves_to_label(props, 150, 6, skip=np.array([up_true]))
    assert len(picked) == 6 and up_true not in picked and len(set(picked)) == 6
    with pytest.raises(ValueError, match="pressure"):
        propose_transitions(h, p[:10])
