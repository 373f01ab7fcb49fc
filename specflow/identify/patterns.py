"""Stick patterns rendered on a Q grid, clean or with physics-informed augmentation.

The augmentations are what a diamond-anvil-cell measurement does to a reference pattern:

* **pattern shift from strain**: compression scales every Q up (``strain``, a relative
  volume-free lattice change, plus a small per-peak ``anisotropy`` for non-hydrostatic stress);
* **peak splitting** from a small symmetry lowering (kept below the rhombohedral splitting that
  tells FeO rB1 from B1, so one class does not become another);
* **peak scaling** (texture: log-normal factors per peak) and **peak elimination**
  (weak reflections lost to texture or a gap);
* **grain sparkle**: a few single-bin spikes on the rings of a coarse-grained sample;
* peak width, a smooth background, Poisson noise and the Q window the detector covers.

Rendered curves then go through the same last steps as measured ones
(:func:`specflow.data.preprocess.finish_on_grid`: baseline removal, min–max over the covered
bins), after the same edge hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from specflow.data.preprocess import Preprocessing, finish_on_grid, minmax

#: The identification grid: Q 1.0–6.5 Å⁻¹ in 1024 points (2θ 5–25° at 25.6 keV is 1.13–5.6).
Q_GRID = (1.0, 6.5, 1024)


def q_grid(grid: tuple[float, float, int] = Q_GRID) -> np.ndarray:
    return np.linspace(grid[0], grid[1], int(grid[2]))


@dataclass(frozen=True)
class PatternAugmentation:
    """Ranges of the physics-informed augmentation (see the module docstring)."""

    strain: tuple[float, float] = (-0.01, 0.06)  # Q scale − 1 (compression: positive)
    anisotropy: float = 0.003  # per-peak relative Q jitter (non-hydrostatic stress)
    split_p: float = 0.15  # probability that a pattern has split peaks
    split: tuple[float, float] = (0.001, 0.004)  # relative separation of the split pair
    texture: float = 0.35  # σ of log-normal per-peak scaling
    eliminate_p: float = 0.08  # per-peak drop probability (weak peaks: 3x)
    sparkle_p: float = 0.3  # probability of grain sparkle
    width: tuple[float, float] = (0.008, 0.03)  # Gaussian σ in Q (Å⁻¹)
    background: float = 0.5  # max smooth background relative to the strongest peak
    counts: tuple[float, float] = (300.0, 20000.0)  # counts at the strongest peak
    coverage: tuple[float, float, float, float] = (1.0, 1.6, 4.5, 6.5)  # Q window lo/hi ranges

    @classmethod
    def none(cls) -> PatternAugmentation:
        """Clean renders: no strain, texture, sparkle, background or noise."""
        return cls(strain=(0.0, 0.0), anisotropy=0.0, split_p=0.0, texture=0.0,
                   eliminate_p=0.0, sparkle_p=0.0, width=(0.012, 0.012), background=0.0,
                   counts=(0.0, 0.0), coverage=(0.0, 0.0, 1e9, 1e9))


def render(q: np.ndarray, intensity: np.ndarray, grid: np.ndarray, width: float
           ) -> np.ndarray:
    """Sum of Gaussians (σ = ``width`` Å⁻¹) of height ``intensity`` at ``q`` on ``grid``."""
    inside = (q > grid[0] - 5 * width) & (q < grid[-1] + 5 * width)
    d = (grid[None, :] - q[inside, None]) / width
    return (intensity[inside, None] * np.exp(-0.5 * d * d)).sum(0)


def augment_sticks(q: np.ndarray, intensity: np.ndarray, aug: PatternAugmentation,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Strained, split, textured and thinned sticks."""
    q = q * (1 + rng.uniform(*aug.strain)) * (1 + aug.anisotropy * rng.standard_normal(q.size))
    intensity = intensity * np.exp(aug.texture * rng.standard_normal(q.size))
    if aug.eliminate_p > 0:
        p_drop = np.where(intensity < 0.1, 3 * aug.eliminate_p, aug.eliminate_p)
        keep = rng.random(q.size) >= p_drop
        keep[np.argmax(intensity)] = True  # never an empty pattern
        q, intensity = q[keep], intensity[keep]
    if aug.split_p > 0 and rng.random() < aug.split_p:
        delta = rng.uniform(*aug.split) * q
        share = rng.uniform(0.3, 0.7, q.size)
        q = np.concatenate([q - delta / 2, q + delta / 2])
        intensity = np.concatenate([intensity * share, intensity * (1 - share)])
    return q, intensity


def augmented_curves(sticks: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray,
                     aug: PatternAugmentation, rng: np.random.Generator,
                     preprocessing: Preprocessing | None = None, with_coverage: bool = False
                     ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """One augmented curve (rows, float32 in [0, 1]) per ``(q, intensity)``, prepared as
    :func:`~specflow.data.preprocess.prepare_curves` prepares measured ones: outside the
    covered Q window the edge value is held, ``preprocessing``'s baseline subtracted, and each
    row min–max scaled over its covered bins (0 elsewhere). ``preprocessing`` None: min–max
    only. ``with_coverage``: also the (rows, grid) mask of covered bins. (Despiking, which
    measured curves get on their fine raw grid, is not applied: on this coarse grid it would
    cut the tops of sharp peaks; grain-sparkle spikes stay in as augmentation.)"""
    out = np.empty((len(sticks), grid.size), dtype=np.float32)
    covered = np.ones(out.shape, dtype=bool)
    x = (grid - grid[0]) / (grid[-1] - grid[0])
    for i, (q, intensity) in enumerate(sticks):
        q, intensity = augment_sticks(q, intensity, aug, rng)
        curve = render(q, intensity, grid, rng.uniform(*aug.width))
        if aug.sparkle_p > 0 and rng.random() < aug.sparkle_p and q.size:
            rings = rng.choice(q.size, size=min(q.size, 3))
            bins = np.clip(np.searchsorted(grid, q[rings]), 0, grid.size - 1)
            curve[bins] += curve.max() * rng.uniform(0.2, 1.0, bins.size)
        if aug.background > 0:
            scale = rng.uniform(0, aug.background) * curve.max()
            curve += scale * np.exp(-rng.uniform(0.5, 4.0) * x) * (1 + 0.3 * np.sin(
                rng.uniform(1, 4) * np.pi * x + rng.uniform(0, np.pi)))
        if aug.counts[1] > 0:
            counts = rng.uniform(*aug.counts)
            curve = rng.poisson(np.clip(curve / max(curve.max(), 1e-12), 0, None)
                                * counts).astype(float) / counts
        lo, hi = rng.uniform(*aug.coverage[:2]), rng.uniform(*aug.coverage[2:])
        inside = np.flatnonzero((grid >= lo) & (grid <= hi))
        if inside.size < 2:
            inside = np.arange(grid.size)
        first, last = inside[0], inside[-1]
        curve[:first], curve[last + 1:] = curve[first], curve[last]  # edge held, as interp
        covered[i, :first] = covered[i, last + 1:] = False
        out[i] = curve
    if preprocessing is None:
        result = minmax(out, where=covered).astype(np.float32)
    else:
        result = finish_on_grid(out, covered, preprocessing, grid)
    return (result, covered) if with_coverage else result


def clean_curves(sticks: Sequence[tuple[np.ndarray, np.ndarray]], grid: np.ndarray,
                 preprocessing: Preprocessing | None = None) -> np.ndarray:
    """Noise-free renders (the library's own patterns), prepared like measured curves."""
    return augmented_curves(sticks, grid, PatternAugmentation.none(),
                            np.random.default_rng(0), preprocessing)
