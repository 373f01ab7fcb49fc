"""What a diamond-anvil cell and an area detector add to a sample's diffraction curve.

Each artefact is switchable in :class:`Artefacts` (all off by default) and documented with the
physics it stands for. The simulator (:mod:`specflow.simulator.simulate`) draws one set per run
(one loading, one beamtime) and applies them in :meth:`XRDSimulator.curves`:

* diamond anvils: single-crystal Bragg spots that leak through the integration mask (sharp,
  intense lines at fixed 2θ, different in every loading) and Compton scattering (a smooth
  background rising with Q);
* the gasket (Re or W) seen by the tails of the beam, at a fraction of the sample pressure;
* the pressure medium (Ne, Ar), whose lines appear only once it solidifies;
* a pressure marker (Au, Pt) mixed with the sample, whose lines move with it;
* coarse grains: per-curve "sparkle" of reflection intensities, texture that evolves with
  pressure;
* the detector: module gaps (NaN bins) and hot pixels;
* the source: beam-intensity decay between top-ups, or a slow drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from specflow.simulator.eos import BirchMurnaghan3
from specflow.simulator.phases import Phase, _cubic, _hexagonal, _structure

# Gaskets: hcp Re (Anzellini et al. 2014, J. Appl. Phys.) and bcc W (Dewaele et al. 2004,
# PRB), rounded. V0 per atom (Å³), K0 (GPa), K0'.
RE_EOS = BirchMurnaghan3(v0=14.71, k0=352.6, k0_prime=4.56)
W_EOS = BirchMurnaghan3(v0=15.85, k0=296.0, k0_prime=4.30)
GASKETS: dict[str, Phase] = {
    "Re": Phase("Re hcp (gasket)", RE_EOS,
                _hexagonal(RE_EOS, 2, lambda p: np.full(np.shape(p), 1.614)),
                _structure("P6_3/mmc", ["Re"], [[1 / 3, 2 / 3, 0.25]])),
    "W": Phase("W bcc (gasket)", W_EOS, _cubic(W_EOS, 2), _structure("Im-3m", ["W"], [[0, 0, 0]])),
}

# Pressure markers mixed with the sample (fcc Au, Pt): lines at the sample's pressure through
# the whole run. Rounded EOS: Au V0 16.96 Å³, K0 167 GPa, K0' 5.9 (e.g. Fei et al. 2007,
# PNAS); Pt V0 15.10 Å³, K0 277 GPa, K0' 5.08 (Dorogokupets & Oganov 2007, PRB).
AU_EOS = BirchMurnaghan3(v0=16.96, k0=167.0, k0_prime=5.9)
PT_EOS = BirchMurnaghan3(v0=15.10, k0=277.0, k0_prime=5.08)
MARKERS: dict[str, Phase] = {
    "Au": Phase("Au fcc (marker)", AU_EOS, _cubic(AU_EOS, 4),
                _structure("Fm-3m", ["Au"], [[0, 0, 0]])),
    "Pt": Phase("Pt fcc (marker)", PT_EOS, _cubic(PT_EOS, 4),
                _structure("Fm-3m", ["Pt"], [[0, 0, 0]])),
}
#: A corpus ``marker`` that is drawn per run: none, or one of :data:`MARKERS`, equally likely
ANY_MARKER = "any"


@dataclass(frozen=True)
class Medium:
    """A pressure medium: fcc solid above ``solidifies`` GPa (room temperature).

    Its lattice follows a Birch–Murnaghan EOS referred to the solidification point
    (``v_solid`` Å³/atom, bulk modulus ``k_solid`` there): rounded values, good to a few per
    cent in volume, enough for a nuisance line that must move with pressure.
    """

    name: str
    solidifies: float
    v_solid: float
    k_solid: float
    k_prime: float = 4.5

    @property
    def phase(self) -> Phase:
        return _medium_phase(self)


@lru_cache(maxsize=8)
def _medium_phase(medium: Medium) -> Phase:
    eos = BirchMurnaghan3(v0=medium.v_solid, k0=medium.k_solid, k0_prime=medium.k_prime)
    lattice = _cubic(eos, 4)
    return Phase(f"{medium.name} fcc (medium)", eos,
                 lambda p: lattice(np.clip(np.asarray(p) - medium.solidifies, 0, None)),
                 _structure("Fm-3m", [medium.name], [[0, 0, 0]]))


# Ne: solid at 4.7 GPa, ~15.5 Å³/atom there; Ar: solid at 1.3 GPa, ~31 Å³/atom there.
MEDIA: dict[str, Medium] = {
    "Ne": Medium("Ne", solidifies=4.7, v_solid=15.5, k_solid=40.0, k_prime=5.0),
    "Ar": Medium("Ar", solidifies=1.3, v_solid=31.0, k_solid=14.0, k_prime=5.5),
}


@dataclass(frozen=True)
class Artefacts:
    """Switches and strengths of the artefacts of one run; all off by default.

    Amplitudes of lines are relative to the strongest sample line; backgrounds relative to the
    run's background level.
    """

    diamond_spots: int = 0  # single-crystal diamond reflections left after masking
    diamond_amplitude: float = 1.0  # height of the brightest spot / strongest sample line
    compton: float = 0.0  # diamond Compton background at high Q / background level
    gasket: str | None = None  # "Re" or "W"
    gasket_amplitude: float = 0.1
    gasket_pressure_ratio: float = 0.5  # gasket pressure / sample pressure (gradient)
    medium: str | None = None  # "Ne" or "Ar"
    medium_amplitude: float = 0.15
    marker: str | None = None  # "Au" or "Pt": a pressure marker mixed with the sample
    marker_amplitude: float = 0.2
    sparkle: float = 0.0  # log-normal sigma of per-curve reflection intensities (coarse grains)
    texture_drift: float = 0.0  # change of log texture factors per 10 GPa
    module_gaps: int = 0  # detector gaps: NaN windows in every curve
    gap_width: float = 0.15  # degrees 2θ
    hot_pixels: int = 0  # bins with a stuck, very high value
    beam_drift: float = 0.0  # fractional beam decay between top-ups (or over the run)
    topup_period: float | None = None  # s; None: a slow monotone drift over the run
    label_noise: float = 0.0  # std of the labeller's phase-fraction threshold

    def __post_init__(self) -> None:
        if self.gasket is not None and self.gasket not in GASKETS:
            raise ValueError(f"unknown gasket {self.gasket!r}; use one of {list(GASKETS)}")
        if self.marker is not None and self.marker not in MARKERS:
            raise ValueError(f"unknown pressure marker {self.marker!r}; use one of "
                             f"{list(MARKERS)}")
        if self.medium is not None and self.medium not in MEDIA:
            raise ValueError(f"unknown pressure medium {self.medium!r}; use one of {list(MEDIA)}")
        for name in ("diamond_spots", "module_gaps", "hot_pixels"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0")


def beam_intensity(time: np.ndarray, drift: float, topup_period: float | None) -> np.ndarray:
    """Relative incident intensity per curve: a sawtooth between top-ups, or a slow decay."""
    time = np.asarray(time, dtype=float)
    if drift <= 0 or time.size == 0:
        return np.ones_like(time)
    if topup_period:
        return 1.0 - drift * ((time - time[0]) % topup_period) / topup_period
    span = max(float(time[-1] - time[0]), 1e-12)
    return 1.0 - drift * (time - time[0]) / span


def compton_profile(q: np.ndarray) -> np.ndarray:
    """Shape of carbon's incoherent scattering vs Q (Å⁻¹): rises from 0 and saturates at 1."""
    s = np.asarray(q) / (4 * math.pi)  # sin θ / λ
    return 1.0 - np.exp(-((s / 0.25) ** 2))


def medium_weight(pressure: np.ndarray, medium: Medium, width: float = 0.3) -> np.ndarray:
    """Fraction of the medium that is solid: 0 below solidification, 1 a little above."""
    return np.clip((np.asarray(pressure) - medium.solidifies) / width, 0.0, 1.0)


def gap_mask(two_theta: np.ndarray, n_gaps: int, width: float,
             rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of bins that fall in ``n_gaps`` detector gaps of ``width`` degrees."""
    mask = np.zeros(len(two_theta), dtype=bool)
    lo, hi = float(two_theta[0]), float(two_theta[-1])
    for centre in rng.uniform(lo + width, hi - width, size=n_gaps):
        mask |= np.abs(two_theta - centre) < width / 2
    return mask


def labeller_thresholds(n: int, threshold: float, noise: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Per-curve phase-fraction threshold a labeller applies (exact without ``noise``)."""
    if noise <= 0:
        return np.full(n, threshold)
    return np.clip(threshold + noise * rng.standard_normal(n), 0.005, 0.45)
