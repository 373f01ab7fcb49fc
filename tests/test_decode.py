"""Direction-constrained HMM decoding of per-curve phase probabilities (specflow.learn.decode)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from specflow.learn.decode import (
    DecoderConfig,
    Sweep,
    _forward_backward,
    _log_transitions,
    _viterbi,
    decode,
    readback_noise,
    sweeps,
)


def noisy_probs(labels: np.ndarray, rng: np.random.Generator, conf: float = 0.7,
                jitter: float = 0.3) -> np.ndarray:
    """Classifier-like probabilities: the true class favoured, plus uniform jitter."""
    n = labels.size
    p = np.full((n, 3), (1 - conf) / 2)
    p[np.arange(n), labels] = conf
    p += rng.uniform(0, jitter, p.shape)
    return p / p.sum(1, keepdims=True)


def soft_probs(true_p: np.ndarray, onset: float, end: float, rng: np.random.Generator,
               width: float = 0.4, noise: float = 0.5) -> np.ndarray:
    """Probabilities that change smoothly with the true pressure around onset/end (up-sweep)."""
    logits = np.stack([np.zeros_like(true_p), (true_p - onset) / width,
                       (true_p - onset) / width + (true_p - end) / width], 1)
    logits += noise * rng.standard_normal(logits.shape)
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def labels_up(p: np.ndarray, onset: float = 12.0, end: float = 16.0) -> np.ndarray:
    return np.where(p < onset, 0, np.where(p < end, 1, 2))


# --- sweeps -------------------------------------------------------------------------------


def test_sweeps_up_down_up() -> None:
    rng = np.random.default_rng(1)
    true_p = np.concatenate([np.linspace(0, 20, 100), np.linspace(20, 5, 81)[1:],
                             np.linspace(5, 25, 101)[1:]])
    sw = sweeps(true_p + 0.3 * rng.standard_normal(true_p.size))
    assert [s.direction for s in sw] == ["up", "down", "up"]
    assert sw[0].start == 0 and sw[-1].stop == true_p.size
    assert all(a.stop == b.start for a, b in itertools.pairwise(sw))
    assert abs(sw[0].stop - 100) <= 4  # turning points (curves 99 and 179) found
    assert abs(sw[1].stop - 180) <= 4


def test_sweeps_mdac_staircase_with_relaxation_is_one_up_sweep() -> None:
    rng = np.random.default_rng(2)
    steps = np.repeat(np.arange(12) * 2.0, 8)  # 2 GPa steps, 8 curves per plateau
    relax = np.tile(np.linspace(0, -0.4, 8), 12)  # pressure drifts down on each plateau
    p = 1 + steps + relax + 0.2 * rng.standard_normal(steps.size)
    assert sweeps(p) == [Sweep(0, p.size, "up")]
    # a staircase back down is a second sweep
    down = p[-1] - np.repeat(np.arange(1, 7) * 2.0, 8) + 0.2 * rng.standard_normal(48)
    sw = sweeps(np.concatenate([p, down]))
    assert [s.direction for s in sw] == ["up", "down"]
    assert sw[0].stop >= p.size - 8  # the top plateau belongs to the compression


def test_sweeps_small_reversal_is_not_a_sweep() -> None:
    p = np.concatenate([np.linspace(0, 10, 50), np.linspace(10, 9.2, 15), np.linspace(9.2, 20, 50)])
    assert sweeps(p) == [Sweep(0, p.size, "up")]
    assert [s.direction for s in sweeps(p, min_reversal=0.5)] == ["up", "down", "up"]


def test_sweeps_degenerate_runs() -> None:
    rng = np.random.default_rng(3)
    assert sweeps(np.zeros(0)) == []
    assert sweeps(np.array([5.0])) == [Sweep(0, 1, "up")]
    assert sweeps(10 + 0.3 * rng.standard_normal(5000)) == [Sweep(0, 5000, "up")]
    assert sweeps(np.linspace(30, 2, 200)) == [Sweep(0, 200, "down")]


# --- decoding -----------------------------------------------------------------------------


def test_compression_removes_flicker_and_is_monotone() -> None:
    rng = np.random.default_rng(4)
    p = np.linspace(2, 30, 280) + 0.2 * rng.standard_normal(280)
    truth = labels_up(np.linspace(2, 30, 280))
    probs = noisy_probs(truth, rng)
    spikes = {20: 2, 60: 1, 150: 0, 200: 0, 250: 1}
    for i, wrong in spikes.items():
        probs[i] = 0.02
        probs[i, wrong] = 0.96
    raw = probs.argmax(1)
    assert (np.diff(raw) < 0).any()  # the classifier flickers
    dec = decode(probs, p)
    assert (np.diff(dec.labels) >= 0).all()
    assert all(dec.labels[i] == truth[i] for i in spikes)
    assert (dec.labels == truth).mean() > 0.97
    assert [s[0] for s in dec.segments] == [0, 1, 2]
    assert dec.labels.dtype == np.int64


def test_decompression_is_non_increasing() -> None:
    rng = np.random.default_rng(5)
    true_p = np.linspace(30, 1, 250)
    truth = np.where(true_p > 10, 2, np.where(true_p > 6, 1, 0))
    probs = noisy_probs(truth, rng)
    probs[[30, 120, 200]] = [[0.97, 0.02, 0.01], [0.01, 0.01, 0.98], [0.01, 0.98, 0.01]]
    dec = decode(probs, true_p + 0.2 * rng.standard_normal(true_p.size))
    assert [s.direction for s in dec.sweeps] == ["down"]
    assert (np.diff(dec.labels) <= 0).all()
    assert [s[0] for s in dec.segments] == [2, 1, 0]
    assert dec.onset("up") is None
    onset, end = dec.onset("down"), dec.end("down")
    assert onset is not None and end is not None
    assert abs(onset.pressure - 10) < 1.0 and abs(end.pressure - 6) < 1.0
    assert dec.to_dict()["direction"] == "decompression"


def test_up_then_down_has_onset_and_reverse_onset() -> None:
    rng = np.random.default_rng(6)
    true_p = np.concatenate([np.linspace(0, 30, 200), np.linspace(30, 0, 201)[1:]])
    up = labels_up(true_p[:200])  # forward at 12 / 16 GPa
    down = np.where(true_p[200:] > 10, 2, np.where(true_p[200:] > 6, 1, 0))  # hysteresis
    truth = np.concatenate([up, down])
    dec = decode(noisy_probs(truth, rng), true_p + 0.2 * rng.standard_normal(true_p.size))
    assert [s.direction for s in dec.sweeps] == ["up", "down"]
    assert [s[0] for s in dec.segments] == [0, 1, 2, 1, 0]
    assert (dec.labels == truth).mean() > 0.97
    fwd, rev = dec.onset("up"), dec.onset("down")
    assert fwd is not None and rev is not None
    assert fwd.index < 200 <= rev.index
    assert abs(fwd.pressure - 12) < 1.0 and abs(rev.pressure - 10) < 1.0
    assert rev.pressure < fwd.pressure
    summary = dec.to_dict()
    json.dumps(summary)
    assert summary["direction"] == "compression+decompression"
    assert summary["phases"] == [0, 1, 2]
    assert len(summary["sweeps"]) == 2
    assert summary["sweeps"][1]["onset"]["pressure"] == pytest.approx(rev.pressure)
    assert summary["transition"]["detected"] and summary["transition"]["sweep"] == 0
    assert summary["transition"]["onset_pressure"] == pytest.approx(fwd.pressure)


def test_no_transition_stays_zero() -> None:
    rng = np.random.default_rng(7)
    p = np.linspace(1, 10, 300) + 0.2 * rng.standard_normal(300)
    probs = rng.dirichlet([4, 2, 2], 300)
    assert (probs.argmax(1) != 0).sum() > 20  # plenty of single-curve disagreements
    dec = decode(probs, p)
    assert (dec.labels == 0).all()
    assert dec.onset() is None and dec.boundaries == []
    summary = dec.to_dict()
    assert summary["phases"] == [0] and not summary["transition"]["detected"]
    assert summary["sweeps"][0]["onset"] is None


def test_run_starting_transformed_reports_no_onset() -> None:
    rng = np.random.default_rng(8)
    p = np.linspace(20, 40, 200)
    dec = decode(noisy_probs(np.full(200, 2), rng), p)
    assert (dec.labels == 2).all()
    assert dec.onset() is None and dec.end() is None
    # starting mid-transition: the end is inside the run, the onset is not
    truth = np.where(p < 25, 1, 2)
    dec = decode(noisy_probs(truth, rng), p)
    assert dec.onset() is None
    end = dec.end()
    assert end is not None and abs(end.pressure - 25) < 0.6
    assert dec.labels[0] == 1


def test_skip_straight_to_phase_two() -> None:
    rng = np.random.default_rng(9)
    p = np.linspace(2, 30, 200)
    truth = np.where(np.arange(200) < 100, 0, 2)
    probs = noisy_probs(truth, rng)
    probs[:, 1] *= 0.3  # "during" never favoured
    probs /= probs.sum(1, keepdims=True)
    dec = decode(probs, p)
    assert dec.segments == [(0, 0, 100), (2, 100, 200)]
    onset, end = dec.onset(), dec.end()
    assert onset is not None and end is not None
    assert onset.index == end.index == 100
    assert onset.pressure == pytest.approx((p[99] + p[100]) / 2)


@pytest.mark.parametrize("seed", range(8))
def test_onset_pressure_close_to_truth_within_uncertainty(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true_p = np.linspace(2, 32, 300)
    recorded = true_p + 0.3 * rng.standard_normal(true_p.size)
    dec = decode(soft_probs(true_p, 12.0, 16.0, rng), recorded)
    onset, end = dec.onset(), dec.end()
    assert onset is not None and end is not None
    for b, truth in ((onset, 12.0), (end, 16.0)):
        assert abs(b.pressure - truth) < 1.0
        assert abs(b.pressure - truth) < 3 * b.uncertainty
        assert dec.readback_noise <= b.uncertainty < 1.5
        assert b.probability > 0.9
    assert readback_noise(recorded) == pytest.approx(0.3, rel=0.35)


def test_posterior_is_normalised_and_matches_brute_force() -> None:
    rng = np.random.default_rng(10)
    n = 7
    probs = rng.dirichlet([1, 1, 1], n)
    le = np.log(probs)
    d = np.array([0, 0, 0, 0, 1, 1, 1])  # steps 1-3 up, 4-6 down
    log_a = _log_transitions(0.2)
    weights = {}
    for path in itertools.product(range(3), repeat=n):
        w = le[0, path[0]] - np.log(3) + sum(
            log_a[d[i], path[i - 1], path[i]] + le[i, path[i]] for i in range(1, n))
        weights[path] = w
    logz = np.logaddexp.reduce(list(weights.values()))
    marg = np.zeros((n, 3))
    for path, w in weights.items():
        marg[np.arange(n), path] += np.exp(w - logz)
    la, lb, z = _forward_backward(le, log_a, d)
    assert z == pytest.approx(logz)
    np.testing.assert_allclose(np.exp(la + lb - z), marg, atol=1e-12)
    best = max(weights, key=weights.get)
    assert _viterbi(le, log_a, d).tolist() == list(best)

    dec = decode(noisy_probs(labels_up(np.linspace(2, 30, 500)), rng), np.linspace(2, 30, 500))
    np.testing.assert_allclose(dec.posterior.sum(1), 1.0)
    assert dec.posterior.min() >= 0
    assert (dec.posterior.argmax(1) == dec.labels).mean() > 0.98


def test_change_probability_matches_brute_force() -> None:
    p = np.linspace(0, 6, 6)  # one up-sweep
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.4, 0.4, 0.2],
                      [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.1, 0.2, 0.7]])
    cfg = DecoderConfig(switch_prob=0.3)
    dec = decode(probs, p, cfg)
    log_a = _log_transitions(0.3)
    le = np.log(probs)
    tot = onset = 0.0
    for path in itertools.product(range(3), repeat=6):
        w = np.exp(le[0, path[0]] + sum(log_a[0, path[i - 1], path[i]] + le[i, path[i]]
                                        for i in range(1, 6)))
        tot += w
        onset += w * (path[0] == 0 and path[-1] >= 1)
    b = dec.onset()
    assert b is not None
    assert b.probability == pytest.approx(onset / tot)


def test_temperature_softens_the_change_point() -> None:
    rng = np.random.default_rng(11)
    true_p = np.linspace(2, 32, 300)
    probs = soft_probs(true_p, 12.0, 16.0, rng, width=1.0, noise=1.0)
    sharp = decode(probs, true_p, DecoderConfig(temperature=1.0)).onset()
    soft = decode(probs, true_p, DecoderConfig(temperature=4.0)).onset()
    assert sharp is not None and soft is not None
    assert soft.uncertainty > sharp.uncertainty
    post_sharp = decode(probs, true_p).posterior.max(1).mean()
    post_soft = decode(probs, true_p, DecoderConfig(temperature=4.0)).posterior.max(1).mean()
    assert post_soft < post_sharp


def test_degenerate_runs() -> None:
    empty = decode(np.zeros((0, 3)), np.zeros(0))
    assert empty.labels.shape == (0,) and empty.posterior.shape == (0, 3)
    assert empty.segments == [] and empty.boundaries == []
    assert empty.to_dict()["direction"] == "none"
    json.dumps(empty.to_dict())
    one = decode(np.array([[0.1, 0.2, 0.7]]), np.array([5.0]))
    assert one.labels.tolist() == [2] and one.segments == [(2, 0, 1)]
    np.testing.assert_allclose(one.posterior, [[0.1, 0.2, 0.7]])
    const = decode(noisy_probs(np.zeros(50, int), np.random.default_rng(0)), np.full(50, 7.0))
    assert const.sweeps == [Sweep(0, 50, "up")] and (const.labels == 0).all()
    assert const.to_dict()["direction"] == "compression"


def test_bad_inputs_raise() -> None:
    p = np.linspace(0, 10, 20)
    good = np.full((20, 3), 1 / 3)
    with pytest.raises(ValueError, match="shape"):
        decode(np.full((20, 2), 0.5), p)
    with pytest.raises(ValueError, match="rows"):
        decode(good[:19], p)
    with pytest.raises(ValueError, match="NaN"):
        decode(good, np.where(np.arange(20) == 4, np.nan, p))
    with pytest.raises(ValueError, match="1-D"):
        decode(good, p.reshape(4, 5))
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        decode(bad, p)
    with pytest.raises(ValueError, match="switch_prob"):
        DecoderConfig(switch_prob=0)
    with pytest.raises(ValueError, match="temperature"):
        DecoderConfig(temperature=0)
    with pytest.raises(ValueError, match="min_reversal"):
        sweeps(p, min_reversal=0)
    with pytest.raises(ValueError, match="direction"):
        decode(good, p).onset("sideways")  # type: ignore[arg-type]


def test_long_noisy_up_down_run_decodes_to_two_clean_sweeps() -> None:
    rng = np.random.default_rng(12)
    true_p = np.concatenate([np.linspace(0, 40, 6000), np.linspace(40, 0, 4001)[1:]])
    truth = np.concatenate([labels_up(true_p[:6000], 15, 20),
                            np.where(true_p[6000:] > 12, 2, np.where(true_p[6000:] > 8, 1, 0))])
    probs = noisy_probs(truth, rng)
    recorded = true_p + 0.5 * rng.standard_normal(true_p.size)
    dec = decode(probs, recorded)
    assert [s.direction for s in dec.sweeps] == ["up", "down"]
    assert [s[0] for s in dec.segments] == [0, 1, 2, 1, 0]
