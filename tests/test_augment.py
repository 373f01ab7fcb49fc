"""Augmentations: determinism, shapes/dtypes, monotone warps and each parameter's effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specflow.data.augment import (
    GROUPS,
    Compose,
    Cutout,
    Jitter,
    MagnitudeWarp,
    PatternShift,
    PeakElimination,
    PeakScaling,
    Scaling,
    Texture,
    TimeWarp,
    WindowSlice,
    WindowWarp,
    interp,
    make_augmentation,
    spline_basis,
)

ALL = [Jitter(), Scaling(), MagnitudeWarp(), TimeWarp(), WindowSlice(), WindowWarp(), Cutout(),
       PeakScaling(), PeakElimination(), PatternShift(), Texture()]
L = 1000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def ramp(b: int = 16, length: int = L) -> torch.Tensor:
    return torch.linspace(0, 1, length).repeat(b, 1)


@pytest.mark.parametrize("t", ALL, ids=lambda t: type(t).__name__)
def test_seeded_determinism_shape_dtype(t):
    x = torch.rand(8, L)
    a, b, c = t(x, gen(1)), t(x, gen(1)), t(x, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.dtype == x.dtype
    xn = x.numpy().astype(np.float64)
    out = t(xn, gen(1))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == xn.shape
    assert t(x[0], gen(1)).shape == (L,)


def test_spline_basis_interpolates_knots_and_constants():
    m = spline_basis(L, 6)
    assert m.shape == (L, 6)
    assert torch.allclose(m.sum(1), torch.ones(L), atol=1e-5)
    knots = np.linspace(0, L - 1, 6).astype(int)
    assert torch.allclose(m[knots[[0, -1]]], torch.eye(6)[[0, -1]], atol=1e-5)


def test_interp_matches_numpy():
    xp = torch.sort(torch.rand(3, 50) * 10, dim=1).values
    fp = torch.rand(3, 50)
    x = torch.rand(3, 70) * 12 - 1
    got = interp(x, xp, fp)
    for i in range(3):
        assert np.allclose(got[i], np.interp(x[i], xp[i], fp[i]), atol=1e-5)


def test_time_warp_is_monotone_even_with_huge_sigma():
    tw = TimeWarp(sigma=3.0)  # speeds often < 0 before clipping
    tau = tw.warp_positions(64, L, gen(0), torch.device("cpu"))
    assert (tau.diff(dim=1) > 0).all()
    assert torch.allclose(tau[:, -1], torch.full((64,), L - 1.0))
    out = tw(ramp(64), gen(0))
    assert (out.diff(dim=1) >= -1e-6).all()  # a warped ramp stays a ramp
    assert torch.allclose(TimeWarp(sigma=0.0)(ramp()), ramp(), atol=2e-3)


def test_time_warp_sigma_controls_strength():
    x = ramp()
    small = (TimeWarp(sigma=0.05)(x, gen(0)) - x).abs().mean()
    large = (TimeWarp(sigma=0.3)(x, gen(0)) - x).abs().mean()
    assert large > 2 * small


def test_magnitude_warp():
    x = torch.ones(32, L)
    assert torch.allclose(MagnitudeWarp(sigma=0.0)(x), x, atol=1e-5)
    y = MagnitudeWarp(sigma=0.3)(x, gen(0))
    assert 0.2 < y.std(dim=1).mean() < 0.4  # factor ~ N(1, 0.3), smooth along the curve
    assert y.diff(dim=1).abs().max() < 0.05


def test_texture_scales_distant_lines_apart_and_keeps_a_split_line_together():
    pos = torch.arange(L, dtype=torch.float32)
    lines = sum(torch.exp(-0.5 * ((pos - c) / 2.0) ** 2) for c in (200, 206, 600))
    y = Texture(sigma=0.5, spacing=40)(lines.repeat(400, 1), gen(0))
    first, split, far = y[:, 200], y[:, 206], y[:, 600]
    log_split, log_far = (split / first).log(), (far / first).log()
    assert 0.5 < log_far.std() < 0.9  # two independent log-normal factors, σ = 0.5 each
    assert log_split.std() < 0.25 * log_far.std()  # 6 bins apart: nearly one factor
    assert abs(y[:, 600].mean() - 1) < 0.1  # unbiased on average
    assert torch.allclose(Texture(sigma=0.0)(lines[None]), lines[None])


def test_jitter_and_scaling_statistics():
    x = torch.ones(64, L)
    assert abs((Jitter(0.1)(x, gen(0)) - x).std().item() - 0.1) < 0.005
    s = Scaling(0.4)(x, gen(0))
    assert torch.allclose(s, s[:, :1].expand_as(s))  # one factor per curve
    assert abs(s[:, 0].std().item() - 0.4) < 0.1


def test_window_slice_keeps_a_window():
    out = WindowSlice(0.8)(ramp(), gen(0))
    span = out[:, -1] - out[:, 0]
    assert torch.allclose(span, torch.full_like(span, 0.8), atol=2e-3)
    assert (out.diff(dim=1) >= 0).all()


def test_window_warp_keeps_ends_and_order():
    out = WindowWarp(0.3, (0.5, 2.0))(ramp(), gen(0))
    assert (out.diff(dim=1) >= -1e-6).all()
    assert torch.allclose(out[:, 0], torch.zeros(16)) and torch.allclose(out[:, -1], torch.ones(16))
    assert (out - ramp()).abs().max() > 0.01


def test_cutout_zeroes_one_window():
    out = Cutout(0.1)(torch.ones(16, L), gen(0))
    zeros = out == 0
    assert (zeros.sum(1) == 100).all()
    assert (zeros.int().diff(dim=1).abs().sum(1) <= 2).all()  # one contiguous run


def test_peak_scaling_constant_per_window():
    out = PeakScaling(window=100)(torch.ones(8, L), gen(0))
    blocks = out.reshape(8, 10, 100)
    assert torch.allclose(blocks, blocks[..., :1].expand_as(blocks))
    assert out.min() >= 0 and out.max() <= 1


def test_peak_elimination_mask_and_tail():
    x = torch.ones(2000, 1000)
    out = PeakElimination(window=300, keep=2 / 3)(x, gen(0))
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert abs(out[:, :900].mean().item() - 2 / 3) < 0.02
    assert out[:, 900:].mean() > 0.5  # the partial last window is not always zeroed (§8.15)


def test_pattern_shift():
    x = torch.arange(1, L + 1, dtype=torch.float32).repeat(64, 1)
    out = PatternShift(max_shift=20)(x, gen(0))
    shifts = set()
    for row in out:
        first = row[row != 0][0].item()  # value that landed first tells the shift
        s = (row != 0).nonzero()[0].item() - (first - 1)
        src = torch.arange(L) - s
        expect = torch.where((src >= 0) & (src < L), src + 1.0, torch.zeros(L))
        assert torch.equal(row, expect)
        shifts.add(int(s))
    assert min(shifts) >= -20 and max(shifts) < 20 and len(shifts) > 10


def test_compose_probability_and_groups():
    x = torch.rand(400, 200)
    assert torch.equal(Compose([Jitter()], p=0.0)(x, gen(0)), x)
    changed = (Compose([Jitter()], p=0.2)(x, gen(0)) != x).any(dim=1).float().mean()
    assert 0.12 < changed < 0.28
    assert [type(t) for t in make_augmentation("release").transforms] == [MagnitudeWarp, TimeWarp]
    xrd = make_augmentation("xrd").transforms
    assert [type(t) for t in xrd] == [MagnitudeWarp, TimeWarp] and xrd[1].sigma == 0.05
    assert len(make_augmentation("G2").transforms) == 5
    plain, wide = (make_augmentation(n).transforms for n in ("instrument", "instrument-wide"))
    assert [type(t) for t in wide] == [type(t) for t in plain]  # only the broadening differs
    assert (plain[1].max_hwhm, wide[1].max_hwhm) == (3.0, 6.0)
    for name in GROUPS:
        assert make_augmentation(name)(x, gen(0)).shape == x.shape
    with pytest.raises(ValueError):
        make_augmentation("G9")


def test_spurious_lines_add_peaks_but_keep_the_curve():
    from specflow.data.augment import SpuriousLines, make_augmentation

    x = torch.zeros(200, 512)
    x[:, 100] = 1.0
    g = torch.Generator().manual_seed(0)
    out = SpuriousLines(max_lines=3)(x, g)
    added = (out - x).clamp_min(0)
    n_lines = ((added[:, 1:-1] > added[:, :-2]) & (added[:, 1:-1] >= added[:, 2:])
               & (added[:, 1:-1] > 0.01)).sum(1)
    assert n_lines.max() <= 3 and (n_lines == 0).any() and (n_lines >= 2).any()
    assert torch.all(out >= x)  # lines only add intensity
    prepared = make_augmentation("nuisance")(x.numpy(), torch.Generator().manual_seed(1))
    assert prepared.min() >= 0 and np.allclose(prepared.max(1), 1)


def test_probe_learns_from_augmented_copies_of_its_labels():
    from specflow.learn.probe import ProbeConfig, augmented_copies, fit_probe

    rng = np.random.default_rng(0)
    x = rng.random((6, 64)).astype(np.float32)
    y = np.array([0, 0, 1, 1, 2, 2])
    cfg = ProbeConfig(augment_copies=5)
    copies = augmented_copies(x, cfg)
    assert copies.shape == (30, 64)
    assert np.array_equal(copies, augmented_copies(x, cfg))  # seeded
    seen = []
    probe = fit_probe(x, y, x, lambda v: seen.append(len(v)) or v, cfg)
    assert seen == [30] and set(probe.classes) == {0, 1, 2}
    assert fit_probe(x, y, x, None, ProbeConfig(augment_copies=0)).predict(x).shape == (6,)


def test_run_out_temperature_softens_an_overconfident_probe():
    from specflow.learn.probe import ProbeConfig, fit_probe, run_out_temperature

    rng = np.random.default_rng(1)
    y = np.tile([0, 1, 2], 20)
    groups = np.repeat(np.arange(4), 15)
    h = np.eye(3)[y] + 1.2 * rng.standard_normal((60, 3))  # overlapping classes
    cfg = ProbeConfig(C=1e4, augment_copies=0)  # nearly unregularised: overconfident
    t = run_out_temperature(h, y, None, None, cfg, groups)
    assert t > 1.5
    plain = fit_probe(h, y, None, None, ProbeConfig(C=1e4, augment_copies=0, calibrate=False))
    tempered = fit_probe(h, y, None, None, cfg, groups=groups)
    assert tempered.temperature == pytest.approx(t)
    assert np.array_equal(plain.predict(h), tempered.predict(h))  # same argmax
    assert tempered.probabilities(h).max(1).mean() < plain.probabilities(h).max(1).mean()
    assert run_out_temperature(h, y, None, None, cfg, np.zeros(60)) == 1.0


def test_coexistence_mixtures_hold_both_phases_lines():
    from specflow.learn.probe import ProbeConfig, coexistence_mixtures, fit_probe

    grid = np.arange(200)
    before = np.exp(-0.5 * ((grid - 50) / 3.0) ** 2)
    after = np.exp(-0.5 * ((grid - 150) / 3.0) ** 2)
    x = np.stack([before] * 4 + [after] * 4).astype(np.float32)
    y = np.array([0, 0, 0, 0, 2, 2, 2, 2])
    groups = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    mix, runs = coexistence_mixtures(x, y, groups, 5, seed=0)
    assert mix.shape == (10, 200) and list(runs) == [0] * 5 + [1] * 5
    assert (mix[:, 50] > 0.15).all() and (mix[:, 150] > 0.15).all()  # both lines present
    assert np.allclose(mix.max(1), 1) and np.allclose(mix.min(1), 0, atol=1e-6)
    assert len(coexistence_mixtures(x[:4], y[:4], groups[:4], 5)[0]) == 0  # no "after": none
    probe = fit_probe(x, y, x, lambda v: v, ProbeConfig(coexistence=5, augment_copies=0),
                      groups=groups)
    assert set(probe.classes) == {0, 1, 2}  # "during" learnt without a "during" label
    assert probe.predict((before + after)[None])[0] == 1  # both lines, min-max scaled
