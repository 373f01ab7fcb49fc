"""Batched, seeded augmentations for 1D diffraction curves (§4).

Every transform takes a batch (B, L) — or one curve (L,) — as a torch tensor or numpy array and
returns the same kind, shape and dtype. Randomness comes only from the ``generator`` argument
(a :class:`torch.Generator`; ``None`` uses torch's global RNG), so a seeded generator gives
identical results. Transforms compose with :class:`Compose`, which applies each transform to each
curve with probability ``p``.

Groups: ``G0`` jitter + magnitude warp + window slice; ``G1`` jitter + time warp + window slice;
``G2`` G1 + window warp + cutout; ``release`` [magnitude warp, time warp] (the released model);
``physics`` peak scaling + peak elimination + pattern shift (autoXRD-style); ``xrd``
[magnitude warp, gentle time warp σ = 0.05]: texture-like intensity changes and small smooth
strain-like shifts that leave small peak splittings intact (docs/method.md compares it with
``release``); ``nuisance`` spurious lines; ``instrument`` (the corpus networks') Q stretch,
line broadening, a smooth intensity warp and spurious lines; ``instrument+texture`` the same
and each reflection's intensity changed on its own (:class:`Texture`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from torch import Tensor

from specflow.data.preprocess import DEFAULT_Q_GRID, minmax

Array = Tensor | np.ndarray


def _rand(shape: Sequence[int], g: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(tuple(shape), generator=g, device=device)


def _randn(shape: Sequence[int], g: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.randn(tuple(shape), generator=g, device=device)


def _randint(high: Tensor | int, n: int, g: torch.Generator | None, device) -> Tensor:
    """Integers uniform in [0, high) (``high`` ≥ 1; per row if a tensor)."""
    return (_rand((n,), g, device) * high).floor().long()


@lru_cache(maxsize=32)
def _spline_basis_np(length: int, n_knots: int) -> np.ndarray:
    knots_x = np.linspace(0.0, length - 1.0, n_knots)
    return CubicSpline(knots_x, np.eye(n_knots), axis=0)(np.arange(length)).astype(np.float32)


def spline_basis(length: int, n_knots: int, device: torch.device | str = "cpu") -> Tensor:
    """(L, n_knots) matrix M with M @ v = cubic spline through knots (x_k evenly on [0, L-1], v)."""
    return torch.from_numpy(_spline_basis_np(length, n_knots)).to(device)


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Row-wise ``np.interp``: x (B, M) queries, xp (B, N) increasing, fp (B, N); clamps ends."""
    n = xp.shape[1]
    idx = torch.searchsorted(xp.contiguous(), x.contiguous(), right=True).clamp(1, n - 1)
    x0, x1 = xp.gather(1, idx - 1), xp.gather(1, idx)
    y0, y1 = fp.gather(1, idx - 1), fp.gather(1, idx)
    w = ((x - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    return y0 + w * (y1 - y0)


def resample(x: Tensor, pos: Tensor) -> Tensor:
    """Linear interpolation of x (B, L) at fractional indices pos (B, M), clamped to [0, L-1]."""
    length = x.shape[1]
    pos = pos.clamp(0.0, length - 1.0)
    lo = pos.floor().long().clamp(max=length - 2) if length > 1 else pos.long()
    w = pos - lo
    return x.gather(1, lo) * (1 - w) + x.gather(1, (lo + 1).clamp(max=length - 1)) * w


class Transform:
    """Base class: handles numpy/torch, 1-D/2-D input and dtype; subclasses define ``apply``."""

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:  # (B, L) float
        raise NotImplementedError

    def __call__(self, x: Array, generator: torch.Generator | None = None) -> Array:
        is_np = isinstance(x, np.ndarray)
        t = torch.from_numpy(np.ascontiguousarray(x)) if is_np else x
        squeeze = t.dim() == 1
        if squeeze:
            t = t.unsqueeze(0)
        if t.dim() != 2:
            raise ValueError(f"expected (B, L) or (L,) curves, got shape {tuple(t.shape)}")
        dtype = t.dtype
        out = self.apply(t.float(), generator).to(dtype)
        if squeeze:
            out = out.squeeze(0)
        return out.numpy() if is_np else out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Jitter(Transform):
    """Add N(0, sigma) noise to every point."""

    def __init__(self, sigma: float = 0.1) -> None:
        self.sigma = sigma

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        return x + self.sigma * _randn(x.shape, g, x.device)


class Scaling(Transform):
    """Multiply each curve by one factor ~ N(1, sigma) (reference code 0.4; paper text 0.1)."""

    def __init__(self, sigma: float = 0.4) -> None:
        self.sigma = sigma

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        return x * (1.0 + self.sigma * _randn((x.shape[0], 1), g, x.device))


class MagnitudeWarp(Transform):
    """Multiply by a smooth cubic spline through knot+2 values ~ N(1, sigma)."""

    def __init__(self, sigma: float = 0.3, knot: int = 4) -> None:
        self.sigma, self.knot = sigma, knot

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        values = 1.0 + self.sigma * _randn((b, self.knot + 2), g, x.device)
        return x * (values @ spline_basis(length, self.knot + 2, x.device).T)


class Texture(Transform):
    """Multiply by a log-normal factor that changes every ``spacing`` bins (a cubic spline of
    log factors ~ N(0, ``sigma``), mean 1): what texture and coarse grains do to a powder
    pattern, each reflection's intensity scaled on its own while lines closer than
    ``spacing`` (a split reflection) keep their ratio. On the default Q grid 40 bins are
    0.09 Å⁻¹, below the spacing of most reflections."""

    def __init__(self, sigma: float = 0.3, spacing: int = 40) -> None:
        self.sigma, self.spacing = sigma, spacing

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        knots = max(4, math.ceil(length / self.spacing) + 1)
        log_f = self.sigma * _randn((b, knots), g, x.device) - self.sigma**2 / 2
        return x * torch.exp(log_f @ spline_basis(length, knots, x.device).T)


class TimeWarp(Transform):
    """Diffraction-angle warp: spline of local speeds ~ N(1, sigma) → cumulative positions τ.

    Speeds are clipped to ≥ ``min_speed`` so τ stays strictly increasing (spec §8.14); τ is
    rescaled so τ[-1] = L-1 and the output at integer t interpolates (τ, x) at t.
    """

    def __init__(self, sigma: float = 0.2, knot: int = 8, min_speed: float = 1e-3) -> None:
        self.sigma, self.knot, self.min_speed = sigma, knot, min_speed

    def warp_positions(self, b: int, length: int, g, device) -> Tensor:
        """New sample positions τ (B, L), strictly increasing, τ[:, -1] = L-1."""
        speeds = 1.0 + self.sigma * _randn((b, self.knot + 2), g, device)
        speed = (speeds @ spline_basis(length, self.knot + 2, device).T).clamp_min(self.min_speed)
        tau = speed.cumsum(1)
        return tau * ((length - 1) / tau[:, -1:])

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        tau = self.warp_positions(b, length, g, x.device)
        t = torch.arange(length, device=x.device, dtype=x.dtype).expand(b, length)
        return interp(t, tau, x)


class WindowSlice(Transform):
    """Keep a random window of ⌈ratio·L⌉ points and stretch it back to L."""

    def __init__(self, reduce_ratio: float = 0.8) -> None:
        self.reduce_ratio = reduce_ratio

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        width = math.ceil(self.reduce_ratio * length)
        if width >= length:
            return x.clone()
        start = _randint(length - width, b, g, x.device).to(x.dtype)
        steps = torch.linspace(0, width - 1, length, device=x.device, dtype=x.dtype)
        return resample(x, start[:, None] + steps[None, :])


class WindowWarp(Transform):
    """Resample a window of ``window_ratio``·L points by a factor from ``scales``; back to L."""

    def __init__(self, window_ratio: float = 0.3, scales: Sequence[float] = (0.7, 1.5)) -> None:
        self.window_ratio, self.scales = window_ratio, tuple(scales)

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        dev, dt = x.device, x.dtype
        size = math.ceil(self.window_ratio * length)
        if size >= length - 2:
            return x.clone()
        scales = torch.tensor(self.scales, device=dev, dtype=dt)
        scale = scales[_randint(len(self.scales), b, g, dev)]
        start = (1 + _randint(length - size - 2, b, g, dev)).to(dt)[:, None]
        new = (size * scale).floor()[:, None]  # warped window length
        total = length - size + new  # warped curve length
        # Output position t → position u in the warped curve → source index in x.
        u = torch.arange(length, device=dev, dtype=dt)[None, :] * (total - 1) / (length - 1)
        inside = (u - start) * size / new.clamp_min(1.0) + start
        src = torch.where(u < start, u, torch.where(u < start + new, inside, u - new + size))
        return resample(x, src)


class Cutout(Transform):
    """Set a random window of ``ratio``·L points to zero."""

    def __init__(self, ratio: float = 0.1) -> None:
        self.ratio = ratio

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        width = max(1, int(round(self.ratio * length)))
        start = _randint(length - width + 1, b, g, x.device)[:, None]
        pos = torch.arange(length, device=x.device)[None, :]
        return x.masked_fill((pos >= start) & (pos < start + width), 0.0)


def _window_values(values: Tensor, window: int, length: int) -> Tensor:
    """Repeat per-window values (B, n_windows) to (B, L); the last partial window keeps its own."""
    return values.repeat_interleave(window, dim=1)[:, :length]


class PeakScaling(Transform):
    """Multiply consecutive windows of ``window`` points by factors ~ U(low, high) (autoXRD)."""

    def __init__(self, window: int = 100, low: float = 0.0, high: float = 1.0) -> None:
        self.window, self.low, self.high = window, low, high

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        n = math.ceil(length / self.window)
        f = self.low + (self.high - self.low) * _rand((b, n), g, x.device)
        return x * _window_values(f, self.window, length)


class PeakElimination(Transform):
    """Zero whole windows of ``window`` points, each kept with probability ``keep`` (autoXRD 2/3).

    Unlike the reference, points after the last whole window are not always zeroed (§8.15).
    """

    def __init__(self, window: int = 300, keep: float = 2 / 3) -> None:
        self.window, self.keep = window, keep

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        n = math.ceil(length / self.window)
        mask = (_rand((b, n), g, x.device) < self.keep).to(x.dtype)
        return x * _window_values(mask, self.window, length)


class PatternShift(Transform):
    """Shift each curve by an integer in [-max_shift, max_shift) points, filling with zeros."""

    def __init__(self, max_shift: int = 20) -> None:
        self.max_shift = max_shift

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        shift = _randint(2 * self.max_shift, b, g, x.device)[:, None] - self.max_shift
        src = torch.arange(length, device=x.device)[None, :] - shift
        valid = (src >= 0) & (src < length)
        return torch.where(valid, x.gather(1, src.clamp(0, length - 1)), torch.zeros_like(x))


class MinMax(Transform):
    """Per-curve min–max normalisation to [0, 1] (deterministic)."""

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        return minmax(x)


class SpuriousLines(Transform):
    """Add 0..``max_lines`` Gaussian lines at random positions: what a diamond spot, a gasket
    or pressure-medium line, or a zinger puts into a curve that says nothing of the sample's
    phase. Heights ~ U(``low``, ``high``) of the curve's range, σ ~ U(``width``) points."""

    def __init__(self, max_lines: int = 4, low: float = 0.05, high: float = 0.8,
                 width: tuple[float, float] = (3.0, 10.0)) -> None:
        self.max_lines, self.low, self.high, self.width = max_lines, low, high, width

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        k = self.max_lines
        if k < 1:
            return x
        dev = x.device
        count = _randint(k + 1, b, g, dev)[:, None]  # lines per curve, 0..k
        on = (torch.arange(k, device=dev)[None, :] < count).to(x.dtype)
        centre = _rand((b, k), g, dev) * length
        sigma = self.width[0] + (self.width[1] - self.width[0]) * _rand((b, k), g, dev)
        height = self.low + (self.high - self.low) * _rand((b, k), g, dev)
        span = (x.amax(1) - x.amin(1))[:, None]
        pos = torch.arange(length, device=dev, dtype=x.dtype)[None, None, :]
        lines = torch.exp(-0.5 * ((pos - centre[..., None]) / sigma[..., None]) ** 2)
        return x + ((height * span * on)[..., None] * lines).sum(1)


class Stretch(Transform):
    """Rescale Q by 1 + s, s ~ U(−``max_stretch``, ``max_stretch``): a detector-distance or
    wavelength calibration error (and a little extra compression) moves every line by the
    same relative amount. ``origin``: the (fractional) bin where Q = 0, by default that of
    the default Q grid (:data:`~specflow.data.preprocess.DEFAULT_Q_GRID`)."""

    def __init__(self, max_stretch: float = 0.006, origin: float | None = None) -> None:
        if origin is None:
            first, last, points = DEFAULT_Q_GRID
            origin = -first / ((last - first) / (points - 1))
        self.max_stretch, self.origin = max_stretch, origin

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, length = x.shape
        s = self.max_stretch * (2 * _rand((b, 1), g, x.device) - 1)
        i = torch.arange(length, device=x.device, dtype=x.dtype)[None, :]
        return resample(x, ((i - self.origin) * (1 + s) + self.origin).clamp(0, length - 1))


class Broaden(Transform):
    """Convolve with a unit-area pseudo-Voigt kernel of half width U(0, ``max_hwhm``) bins
    and Lorentzian share U(0, 1): broader and longer-tailed lines than the training data
    had (another instrument, strain, small grains)."""

    def __init__(self, max_hwhm: float = 3.0, reach: int = 24) -> None:
        self.max_hwhm, self.reach = max_hwhm, reach

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        b, _ = x.shape
        dev = x.device
        hw = 0.3 + (self.max_hwhm - 0.3) * _rand((b, 1), g, dev)
        eta = _rand((b, 1), g, dev)
        d = torch.arange(-self.reach, self.reach + 1, device=dev, dtype=x.dtype)[None, :] / hw
        kernel = eta / (1 + d**2) + (1 - eta) * torch.exp(-np.log(2) * d**2)
        kernel = kernel / kernel.sum(1, keepdim=True)
        padded = torch.nn.functional.pad(x[None], (self.reach, self.reach), mode="replicate")
        out = torch.nn.functional.conv1d(padded, kernel[:, None, :], groups=b)
        return out[0]


class Compose(Transform):
    """Apply ``transforms`` in order; each one hits each curve with probability ``p``."""

    def __init__(self, transforms: Sequence[Callable], p: float = 1.0) -> None:
        self.transforms, self.p = list(transforms), p

    def apply(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        for t in self.transforms:
            fn = t.apply if isinstance(t, Transform) else (lambda v, gen, t=t: t(v, gen))
            if self.p >= 1.0:
                x = fn(x, g)
            elif self.p > 0.0:
                hit = _rand((x.shape[0], 1), g, x.device) < self.p
                x = torch.where(hit, fn(x, g), x)
        return x


GROUPS: dict[str, Callable[[], list[Transform]]] = {
    "G0": lambda: [Jitter(), MagnitudeWarp(), WindowSlice()],
    "G1": lambda: [Jitter(), TimeWarp(), WindowSlice()],
    "G2": lambda: [Jitter(), TimeWarp(), WindowSlice(), WindowWarp(), Cutout()],
    "release": lambda: [MagnitudeWarp(), TimeWarp()],
    "physics": lambda: [PeakScaling(), PeakElimination(), MinMax(), PatternShift()],
    "xrd": lambda: [MagnitudeWarp(), TimeWarp(sigma=0.05)],
    "nuisance": lambda: [SpuriousLines(), MinMax()],
    "instrument": lambda: _instrument(),
    # lines broadened up to twice as far (a coarser instrument resolution)
    "instrument-wide": lambda: _instrument(max_hwhm=6.0),
    # each reflection's intensity changed on its own too (texture, coarse grains)
    "instrument+texture": lambda: _instrument(texture=True),
    "none": lambda: [],
}


def _instrument(max_hwhm: float = 3.0, texture: bool = False) -> list[Transform]:
    """What differs between instruments and sample environments, on the model's Q grid:
    calibration, line width (up to ``max_hwhm`` bins) and shape, smooth intensity changes,
    reflection intensities (``texture``), lines from elsewhere."""
    return [Stretch(), Broaden(max_hwhm=max_hwhm), MagnitudeWarp(sigma=0.15),
            *([Texture()] if texture else []), SpuriousLines(), MinMax()]


def check_augmentation(name: object) -> str:
    """``name`` if it is an augmentation group, else ``ValueError`` listing the groups."""
    if name not in GROUPS:
        raise ValueError(f"unknown augmentation group {name!r}; choose from {list(GROUPS)}")
    return str(name)


def make_augmentation(name: str = "release", p: float = 1.0) -> Compose:
    """Named augmentation pipeline (``G0``, ``G1``, ``G2``, ``release``, ``physics``, ``xrd``,
    ``nuisance``, ``instrument``, ``instrument-wide``, ``instrument+texture``,
    ``none``)."""
    return Compose(GROUPS[check_augmentation(name)](), p=p)


__all__ = [
    "GROUPS",
    "check_augmentation",
    "Compose",
    "Cutout",
    "Jitter",
    "MagnitudeWarp",
    "MinMax",
    "PatternShift",
    "PeakElimination",
    "PeakScaling",
    "Scaling",
    "SpuriousLines",
    "Stretch",
    "Broaden",
    "Texture",
    "TimeWarp",
    "Transform",
    "WindowSlice",
    "WindowWarp",
    "interp",
    "make_augmentation",
    "resample",
    "spline_basis",
]
