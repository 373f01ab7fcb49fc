"""Physically grounded simulator of diamond-anvil-cell XRD runs through a phase transition.

Reflections come from pymatgen's XRDCalculator on real structures (:mod:`specflow.data.phases`),
their lattices follow third-order Birch–Murnaghan equations of state; on top come a
path-dependent phase fraction (coexistence, hysteresis on decompression), pressure-dependent
pseudo-Voigt broadening, texture, a smooth background and Poisson counting noise. The
ground-truth label of each curve follows from its phase fraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import xarray as xr

from specflow.data.phases import FE_BCC, FE_HCP, FEO_B1, FEO_ONSET_GPA, FEO_RB1, Phase
from specflow.data.schema import energy_to_wavelength, make_spectra

DEFAULT_ENERGY_KEV = 25.6
DEFAULT_GRID = (5.0, 25.0, 4000)
LABEL_THRESHOLD = 0.05  # phase fraction below it: before (0); above 1 - it: after (2)


@dataclass(frozen=True)
class Material:
    """A sample with a pressure-induced transition from ``low`` to ``high``.

    The high-pressure fraction grows from 0 at ``onset`` to 1 at ``end`` on compression and
    falls from 1 at ``reverse_onset`` to 0 at ``reverse_end`` on decompression (hysteresis).
    """

    name: str
    low: Phase
    high: Phase
    onset: float
    end: float
    reverse_onset: float
    reverse_end: float
    transformation_broadening: float = 0.015  # extra FWHM (deg) at 50 % coexistence


MATERIALS: dict[str, Material] = {
    "Fe": Material("Fe", FE_BCC, FE_HCP, onset=13.0, end=16.0, reverse_onset=10.0,
                   reverse_end=7.5),
    "FeO": Material("FeO", FEO_B1, FEO_RB1, onset=FEO_ONSET_GPA, end=19.0, reverse_onset=14.0,
                    reverse_end=11.0, transformation_broadening=0.005),
}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def phase_fraction(material: Material, pressure_path: np.ndarray) -> np.ndarray:
    """High-pressure phase fraction along a pressure path, with hysteresis.

    On compression the fraction can only grow towards the forward curve, on decompression
    only shrink towards the reverse curve, so a sample that is half transformed stays so
    while the pressure wavers between the two curves.
    """
    path = np.asarray(pressure_path, dtype=float)
    up = _smoothstep((path - material.onset) / (material.end - material.onset))
    width = material.reverse_onset - material.reverse_end
    down = _smoothstep((path - material.reverse_end) / width)
    out = np.empty_like(path)
    f = 0.0
    for i in range(len(path)):
        f = max(f, up[i])
        f = min(f, down[i])
        out[i] = f
    return out


def labels_from_fraction(fraction: np.ndarray, threshold: float = LABEL_THRESHOLD) -> np.ndarray:
    """0 (before: fraction < threshold), 2 (after: > 1 - threshold), otherwise 1 (during)."""
    fraction = np.asarray(fraction)
    labels = np.ones(fraction.shape, dtype=np.int8)
    labels[fraction < threshold] = 0
    labels[fraction > 1 - threshold] = 2
    return labels


@dataclass(frozen=True)
class Instrument:
    """Beamline and sample-environment parameters that shape a curve."""

    energy_kev: float = DEFAULT_ENERGY_KEV
    fwhm0: float = 0.035  # instrumental FWHM (deg)
    fwhm_per_gpa: float = 0.0015  # deviatoric-stress broadening (deg/GPa)
    eta: float = 0.5  # pseudo-Voigt Lorentzian fraction
    peak_counts: float = 3000.0  # expected counts at the strongest peak of an ambient curve
    background_counts: float = 150.0
    texture: float = 0.3  # log-normal sigma of per-reflection intensity factors (per run)
    grain_noise: float = 0.05  # per-curve log-normal jitter of reflection intensities


class XRDSimulator:
    """Simulate integrated 1D XRD curves of one sample loaded in a cell.

    Texture and background shape are drawn once per instance (one sample loading);
    each call to :meth:`curves` draws fresh counting noise.
    """

    def __init__(
        self,
        material: str | Material = "Fe",
        energy_kev: float = DEFAULT_ENERGY_KEV,
        two_theta: np.ndarray | None = None,
        seed: int | None = 0,
        instrument: Instrument | None = None,
    ):
        self.material = MATERIALS[material] if isinstance(material, str) else material
        self.instrument = replace(instrument or Instrument(), energy_kev=energy_kev)
        self.two_theta = (
            np.linspace(*DEFAULT_GRID) if two_theta is None else np.asarray(two_theta, float)
        )
        self.rng = np.random.default_rng(seed)
        top = float(self.two_theta[-1]) + 2.0
        self._texture = {
            phase.name: np.exp(
                self.instrument.texture
                * self.rng.standard_normal(len(phase.reflections(energy_kev, top)[0]))
            )
            for phase in (self.material.low, self.material.high)
        }
        # ambient strongest-peak height of the low phase fixes the count scale
        self._scale = 1.0
        self._scale = self.instrument.peak_counts / float(
            self._signal(np.array([0.0]), np.array([0.0]))[0].max()
        )
        bg_shape = self.rng.uniform(0.7, 1.3, size=3)
        x = (self.two_theta - self.two_theta[0]) / (self.two_theta[-1] - self.two_theta[0])
        self._background = self.instrument.background_counts * (
            bg_shape[0] * np.exp(-3 * x) + 0.5 * bg_shape[1] * np.exp(-((x - 0.4) / 0.25) ** 2)
            + 0.2 * bg_shape[2]
        )

    @property
    def wavelength(self) -> float:
        """X-ray wavelength in Å."""
        return energy_to_wavelength(self.instrument.energy_kev)

    def phase_fraction(self, pressure_path: np.ndarray) -> np.ndarray:
        """High-pressure phase fraction along ``pressure_path`` (hysteresis included)."""
        return phase_fraction(self.material, pressure_path)

    def peaks(self, phase: Phase, pressure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peak positions (deg) and textured intensities (n, m) of ``phase`` at ``pressure``."""
        pos, inten = phase.peaks(pressure, self.instrument.energy_kev, self.two_theta[-1] + 2.0)
        return pos, inten * self._texture[phase.name]

    def _signal(self, pressure: np.ndarray, fraction: np.ndarray, chunk: int = 64) -> np.ndarray:
        """Noise-free diffracted intensity (n, L) before background, in counts."""
        inst, x = self.instrument, self.two_theta.astype(np.float32)
        fwhm = inst.fwhm0 + inst.fwhm_per_gpa * np.clip(pressure, 0, None)
        fwhm = fwhm + self.material.transformation_broadening * 4 * fraction * (1 - fraction)
        parts = []
        for phase, weight in ((self.material.low, 1 - fraction), (self.material.high, fraction)):
            pos, inten = self.peaks(phase, pressure)
            if inst.grain_noise > 0:
                inten = inten * np.exp(inst.grain_noise * self.rng.standard_normal(inten.shape))
            parts.append((pos, inten * weight[:, None]))
        pos = np.concatenate([p for p, _ in parts], axis=1).astype(np.float32)
        area = np.concatenate([a for _, a in parts], axis=1).astype(np.float32) * self._scale
        out = np.empty((len(pressure), len(x)), dtype=np.float32)
        for s in range(0, len(pressure), chunk):
            out[s : s + chunk] = _pseudo_voigt_sum(
                x, pos[s : s + chunk], area[s : s + chunk], fwhm[s : s + chunk], inst.eta
            )
        return out

    def curves(
        self, pressure: np.ndarray | float, phase_fraction: np.ndarray | None = None
    ) -> np.ndarray:
        """Noisy curves (n, L) float32 in counts at the true ``pressure`` (GPa).

        ``phase_fraction`` defaults to the equilibrium fraction on compression.
        """
        pressure = np.atleast_1d(np.asarray(pressure, dtype=float))
        if phase_fraction is None:
            phase_fraction = self.phase_fraction(np.maximum.accumulate(pressure))
        phase_fraction = np.atleast_1d(np.asarray(phase_fraction, dtype=float))
        mean = self._signal(pressure, phase_fraction) + self._background.astype(np.float32)
        return self.rng.poisson(mean).astype(np.float32)


def _pseudo_voigt_sum(
    x: np.ndarray, pos: np.ndarray, area: np.ndarray, fwhm: np.ndarray, eta: float
) -> np.ndarray:
    """Σ over peaks of area-normalised pseudo-Voigt profiles; (n, m) peaks -> (n, L)."""
    hw = (fwhm / 2).astype(np.float32)[:, None, None]
    d = x[None, None, :] - pos[:, :, None]  # (n, m, L)
    d2 = (d / hw) ** 2
    lorentz = 1 / (np.pi * hw * (1 + d2))
    gauss = np.sqrt(np.log(2) / np.pi) / hw * np.exp(-np.log(2) * d2)
    profile = eta * lorentz + (1 - eta) * gauss
    return np.einsum("nm,nml->nl", area, profile)


# --- pressure paths ---------------------------------------------------------------------------

CellKind = Literal["dDAC", "mDAC"]


def pressure_path(
    n_curves: int,
    start: float,
    stop: float,
    *,
    cell: CellKind = "dDAC",
    decompress_to: float | None = None,
    rng: np.random.Generator,
) -> np.ndarray:
    """True sample pressure for each curve of a ramp.

    dDAC: a smooth ramp driven by a piezo, slightly non-linear in time; mDAC: a membrane
    cell, pressure rises in steps with several curves per plateau and relaxes a little on each.
    With ``decompress_to`` the second third of the curves returns to that pressure.
    """
    if n_curves < 2:
        raise ValueError("a pressure ramp needs at least 2 curves")
    n_up = n_curves if decompress_to is None else int(round(n_curves * 2 / 3))
    t = np.linspace(0.0, 1.0, n_up)
    if cell == "dDAC":
        shape = t + 0.08 * np.sin(np.pi * t) * rng.uniform(-1, 1)
    elif cell == "mDAC":
        n_steps = max(3, n_up // 6)
        idx = np.minimum(np.floor(t * n_steps), n_steps - 1)
        creep = 0.1 * (1 - np.exp(-4 * (t * n_steps - idx)))  # membrane creep on a plateau
        shape = (idx + creep) / (n_steps - 1 + 0.1)
    else:
        raise ValueError(f"unknown cell kind {cell!r}; use 'dDAC' or 'mDAC'")
    up = start + (stop - start) * np.clip(shape, 0, 1)
    if decompress_to is None:
        return up
    down = np.linspace(stop, decompress_to, n_curves - n_up + 1)[1:]
    return np.concatenate([up, down])


def simulate_run(
    material: str = "Fe",
    n_curves: int = 300,
    *,
    seed: int = 0,
    start: float = 0.5,
    stop: float | None = None,
    decompress_to: float | None = None,
    cell: CellKind = "dDAC",
    rate: float = 1.0,
    readback_noise: float = 0.15,
    peak_counts: float = 3000.0,
    energy_kev: float = DEFAULT_ENERGY_KEV,
    two_theta: np.ndarray | None = None,
    sample: str | None = None,
    run_uid: str | None = None,
) -> xr.Dataset:
    """Simulate one compression run as a canonical spectra Dataset.

    ``rate`` is the mean compression rate in GPa/s (sets the ``time`` coord);
    ``readback_noise`` the std (GPa) of the recorded pressure around the true one;
    ``peak_counts`` the signal-to-noise knob. The Dataset carries the ground truth:
    ``label``, ``phase_fraction`` and ``true_pressure``.
    """
    mat = MATERIALS[material]
    stop = stop if stop is not None else mat.end + 14.0
    rng = np.random.default_rng(seed)
    true_p = pressure_path(n_curves, start, stop, cell=cell, decompress_to=decompress_to, rng=rng)
    sim = XRDSimulator(mat, energy_kev, two_theta, seed=int(rng.integers(2**31)),
                       instrument=Instrument(peak_counts=peak_counts))
    fraction = sim.phase_fraction(true_p)
    intensity = sim.curves(true_p, fraction)
    dt = np.abs(np.diff(true_p, prepend=true_p[0])).mean() / rate
    recorded = true_p + readback_noise * rng.standard_normal(n_curves)
    attrs = {
        "sample": sample or mat.name,
        "material": mat.name,
        "energy": energy_kev,
        "wavelength": energy_to_wavelength(energy_kev),
        "cell": cell,
        "compression_rate": rate,
        "source": "specflow simulator",
        "seed": seed,
    }
    if run_uid:
        attrs["run_uid"] = run_uid
    return make_spectra(
        intensity,
        sim.two_theta,
        recorded,
        time=np.arange(n_curves) * dt,
        label=labels_from_fraction(fraction),
        attrs=attrs,
        extra={"phase_fraction": fraction.astype(np.float32), "true_pressure": true_p},
    )


# The nine paper-shaped sets: Fe and FeO, 60–460 curves, different rates and signal-to-noise.
PAPER_PRESETS: Mapping[str, dict] = {
    "D1": dict(material="Fe", n_curves=460, cell="dDAC", rate=2.0, peak_counts=6000),
    "D2": dict(material="Fe", n_curves=300, cell="dDAC", rate=0.5, peak_counts=3000),
    "D3": dict(material="Fe", n_curves=60, cell="mDAC", rate=0.05, peak_counts=1500),
    "D4": dict(material="FeO", n_curves=436, cell="dDAC", rate=0.3, peak_counts=6000),
    "D5": dict(material="Fe", n_curves=240, cell="dDAC", rate=1.0, peak_counts=2000,
               decompress_to=2.0),
    "D6": dict(material="Fe", n_curves=120, cell="mDAC", rate=0.1, peak_counts=800),
    "D7": dict(material="FeO", n_curves=436, cell="dDAC", rate=3.0, peak_counts=3000),
    "D8": dict(material="FeO", n_curves=90, cell="mDAC", rate=0.05, peak_counts=1500),
    "D9": dict(material="FeO", n_curves=200, cell="dDAC", rate=1.0, peak_counts=1000),
}


def paper_datasets(seed: int = 0, names: list[str] | None = None) -> dict[str, xr.Dataset]:
    """The nine paper-shaped data sets D1–D9 (or a subset), deterministic in ``seed``."""
    out = {}
    for i, name in enumerate(names or list(PAPER_PRESETS)):
        kwargs = dict(PAPER_PRESETS[name])
        out[name] = simulate_run(seed=seed * 100 + i, sample=f"{kwargs['material']} {name}",
                                 run_uid=f"sim-{name}-{seed}", **kwargs)
    return out
