"""Physically grounded simulator of diamond-anvil-cell XRD runs through a phase transition.

Reflections come from pymatgen's XRDCalculator on real structures
(:mod:`specflow.simulator.phases`),
their lattices follow third-order Birch–Murnaghan equations of state; on top come a
path-dependent phase fraction (coexistence, hysteresis on decompression), pressure-dependent
pseudo-Voigt broadening, texture, a smooth background and Poisson counting noise. The
ground-truth label of each curve follows from its phase fraction.

Two presets (:func:`draw_conditions`): ``clean`` (one fixed instrument, the literature onset,
no artefacts: the paper-shaped sets D1–D9) and ``realistic`` (every run its own beam energy,
2θ range and grid, counts, background, onset and transition width, gauge calibration error,
and the artefacts of :mod:`specflow.simulator.artefacts`). :func:`simulate_family` draws several
loadings of one transition, the unit of the cross-run benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import numpy as np
import xarray as xr

from specflow.data.labels import LABEL_THRESHOLD, labels_from_fraction
from specflow.data.schema import energy_to_wavelength, make_spectra, q_to_two_theta, two_theta_to_q
from specflow.simulator.artefacts import (
    ANY_MARKER,
    GASKETS,
    MARKERS,
    MEDIA,
    Artefacts,
    beam_intensity,
    compton_profile,
    gap_mask,
    labeller_thresholds,
    medium_weight,
)
from specflow.simulator.lines import ExpectedCurves, line_sum, line_widths, pseudo_voigt_sum
from specflow.simulator.observer import visible_labels
from specflow.simulator.phases import Phase
from specflow.simulator.transitions import TRANSITIONS, Transition, get_transition

DEFAULT_ENERGY_KEV = 25.6
DEFAULT_GRID = (5.0, 25.0, 4000)


Material = Transition  # the simulator's name for a transition (kept for callers)
MATERIALS: dict[str, Transition] = TRANSITIONS


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


#: Å⁻¹: where a strain-law instrument's lines are as wide as the constant-width law's
STRAIN_Q_REF = 3.3
#: Pressure-broadening laws a family of runs can draw (``broadening=``): ``constant``, the
#: same width at every angle; ``any``: each run draws that or, with probability ½, the
#: strain law (:meth:`Instrument.strain_law`) at 0.5–2× the width at ``STRAIN_Q_REF``.
BROADENING_LAWS = ("constant", "any")


def check_broadening(law: object) -> str:
    """``law`` if it is one of :data:`BROADENING_LAWS`, else ``ValueError`` naming them."""
    if law not in BROADENING_LAWS:
        raise ValueError(f"unknown broadening law {law!r}; use one of {list(BROADENING_LAWS)}")
    return str(law)


@dataclass(frozen=True)
class Instrument:
    """Beamline and sample-environment parameters that shape a curve."""

    energy_kev: float = DEFAULT_ENERGY_KEV
    fwhm0: float = 0.035  # instrumental FWHM (deg)
    fwhm_per_gpa: float = 0.0015  # deviatoric-stress broadening (deg/GPa)
    strain_per_gpa: float = 0.0  # microstrain broadening, FWHM of Δd/d per GPa (∝ tan θ)
    eta: float = 0.5  # pseudo-Voigt Lorentzian fraction
    peak_counts: float = 3000.0  # expected counts at the strongest peak of an ambient curve
    background_counts: float = 150.0
    texture: float = 0.3  # log-normal sigma of per-reflection intensity factors (per run)
    grain_noise: float = 0.05  # per-curve log-normal jitter of reflection intensities
    background_shape: tuple[float, ...] | None = None  # 4 weights; None: drawn per loading

    def fwhm(self, pressure: Any) -> Any:
        """Line width (FWHM, deg) at ``pressure`` (GPa; below 0 counts as 0)."""
        return self.fwhm0 + self.fwhm_per_gpa * np.clip(pressure, 0, None)

    def strain_law(self, factor: float = 1.0, q_ref: float = STRAIN_Q_REF) -> Instrument:
        """This instrument with its pressure broadening (``fwhm_per_gpa``, the same width at
        every angle) made microstrain broadening, which grows with the angle: as wide at
        ``q_ref`` (Å⁻¹), times ``factor``. Only from the constant law: an instrument that
        already has strain raises."""
        if self.strain_per_gpa:
            raise ValueError("strain_law() converts the constant-width law; this instrument "
                             "already has strain_per_gpa")
        theta = np.arcsin(q_ref * energy_to_wavelength(self.energy_kev) / (4 * np.pi))
        strain = np.radians(self.fwhm_per_gpa) / (2 * np.tan(theta))
        return replace(self, fwhm_per_gpa=0.0, strain_per_gpa=float(factor * strain))

    def strain(self, pressure: Any) -> np.ndarray | None:
        """Microstrain (FWHM of Δd/d) at ``pressure``, which widens each line by
        2·strain·tan θ (:func:`~specflow.simulator.lines.line_widths`); None when the
        instrument has none (every line of a curve as wide)."""
        if not self.strain_per_gpa:
            return None
        return self.strain_per_gpa * np.clip(np.atleast_1d(pressure), 0, None)


class XRDSimulator:
    """Simulate integrated 1D XRD curves of one sample loaded in a cell.

    Texture, background shape and the artefacts' fixed parts (diamond spots, detector gaps,
    hot pixels) are drawn once per instance (one sample loading); each call to
    :meth:`curves` draws fresh counting noise and grain sparkle.
    """

    def __init__(
        self,
        material: str | Material = "Fe",
        energy_kev: float = DEFAULT_ENERGY_KEV,
        two_theta: np.ndarray | None = None,
        seed: int | None = 0,
        instrument: Instrument | None = None,
        artefacts: Artefacts | None = None,
    ):
        self.material = get_transition(material) if isinstance(material, str) else material
        self.instrument = replace(instrument or Instrument(), energy_kev=energy_kev)
        self.artefacts = artefacts or Artefacts()
        self.two_theta = (
            np.linspace(*DEFAULT_GRID) if two_theta is None else np.asarray(two_theta, float)
        )
        self.rng = np.random.default_rng(seed)
        art, inst = self.artefacts, self.instrument
        self._top = float(self.two_theta[-1]) + 2.0
        self._texture = {
            phase.name: self.rng.standard_normal((2, self._n_reflections(phase)))
            for phase in self.phases
        }
        if self.material.inherits_texture:
            self._texture[self.material.high.name] = self._inherited_texture()
        # ambient strongest-peak height of the low phase fixes the count scale
        self._scale = {self.material.low.name: 1.0, self.material.high.name: 1.0}
        height = float(self._lines(self.material.low, np.array([0.0]), np.ones(1)).max())
        self._scale = dict.fromkeys(self._scale, inst.peak_counts / height)
        for phase, amplitude, p_ref in self._environment():
            self._scale[phase.name] = 1.0
            own = float(self._lines(phase, np.array([p_ref]), np.ones(1)).max())
            self._scale[phase.name] = amplitude * inst.peak_counts / max(own, 1e-12)
        self._background = self._draw_background()
        self._spots = self._draw_diamond_spots()
        self._gaps = gap_mask(self.two_theta, art.module_gaps, art.gap_width, self.rng)
        self._hot = self.rng.choice(len(self.two_theta), size=art.hot_pixels, replace=False)
        self._hot_values = inst.peak_counts * self.rng.uniform(0.5, 3.0, size=art.hot_pixels)

    @property
    def wavelength(self) -> float:
        """X-ray wavelength in Å."""
        return energy_to_wavelength(self.instrument.energy_kev)

    @property
    def q(self) -> np.ndarray:
        """Momentum transfer Q = 4π sin θ / λ (Å⁻¹) of the grid."""
        return two_theta_to_q(self.two_theta, self.wavelength)

    @property
    def phases(self) -> list[Phase]:
        """Sample phases, then gasket, pressure medium and marker when present."""
        out = [self.material.low, self.material.high]
        art = self.artefacts
        if art.gasket:
            out.append(GASKETS[art.gasket])
        if art.marker:
            out.append(MARKERS[art.marker])
        if art.medium:
            out.append(MEDIA[art.medium].phase)
        return out

    def _environment(self) -> list[tuple[Phase, float, float]]:
        """(phase, amplitude, reference pressure) of the gasket, the marker and the solid
        medium."""
        art, out = self.artefacts, []
        if art.gasket:
            out.append((GASKETS[art.gasket], art.gasket_amplitude, 0.0))
        if art.marker:
            out.append((MARKERS[art.marker], art.marker_amplitude, 0.0))
        if art.medium:
            medium = MEDIA[art.medium]
            out.append((medium.phase, art.medium_amplitude, medium.solidifies + 1.0))
        return out

    def _n_reflections(self, phase: Phase) -> int:
        return len(phase.reflections(self.instrument.energy_kev, self._top)[0])

    def _inherited_texture(self, tolerance: float = 0.02) -> np.ndarray:
        """Texture factors of the high phase that keep, for each of its reflections, those of
        the low phase's reflection it splits from (nearest in 2θ at the onset, within a
        relative ``tolerance``); reflections with no parent keep their own draw."""
        low, high = self.material.low, self.material.high
        at = np.array([self.material.onset])
        parent_pos = self.peaks(low, at)[0][0]
        own = self._texture[high.name].copy()
        for j, t in enumerate(self.peaks(high, at)[0][0]):
            k = int(np.argmin(np.abs(parent_pos - t)))
            if abs(parent_pos[k] - t) < tolerance * t:
                own[:, j] = self._texture[low.name][:, k]
        return own

    def _draw_background(self) -> np.ndarray:
        """Smooth background in counts: decaying air/medium scatter, an amorphous hump,
        a constant, and diamond Compton scattering rising with Q."""
        inst = self.instrument
        shape = (np.asarray(inst.background_shape, dtype=float)
                 if inst.background_shape is not None else self.rng.uniform(0.7, 1.3, size=4))
        x = (self.two_theta - self.two_theta[0]) / (self.two_theta[-1] - self.two_theta[0])
        hump_at = 0.4 if inst.background_shape is not None else self.rng.uniform(0.2, 0.6)
        background = inst.background_counts * (
            shape[0] * np.exp(-3 * x) + 0.5 * shape[1] * np.exp(-((x - hump_at) / 0.25) ** 2)
            + 0.2 * shape[2]
        )
        if self.artefacts.compton > 0:
            background = background + (self.artefacts.compton * inst.background_counts
                                       * shape[3] * compton_profile(self.q))
        return background.astype(np.float32)

    def _draw_diamond_spots(self) -> tuple[np.ndarray, np.ndarray]:
        """Positions (deg) and heights (counts) of leaked diamond reflections."""
        art = self.artefacts
        lo, hi = float(self.two_theta[0]), float(self.two_theta[-1])
        pos = self.rng.uniform(lo, hi, size=art.diamond_spots)
        heights = (art.diamond_amplitude * self.instrument.peak_counts
                   * self.rng.uniform(0.2, 1.0, size=art.diamond_spots))
        return pos, heights

    def phase_fraction(self, pressure_path: np.ndarray) -> np.ndarray:
        """High-pressure phase fraction along ``pressure_path`` (hysteresis included)."""
        return phase_fraction(self.material, pressure_path)

    def peaks(self, phase: Phase, pressure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Peak positions (deg) and textured intensities (n, m) of ``phase`` at ``pressure``.

        Texture factors are log-normal per reflection and drift with pressure
        (``Artefacts.texture_drift`` per 10 GPa).
        """
        pressure = np.atleast_1d(np.asarray(pressure, dtype=float))
        pos, inten = phase.peaks(pressure, self.instrument.energy_kev, self._top)
        base, drift = self._texture[phase.name]
        log_t = (self.instrument.texture * base[None, :]
                 + self.artefacts.texture_drift * (pressure[:, None] / 10.0) * drift[None, :])
        return pos, inten * np.exp(log_t)

    def _components(self, pressure: np.ndarray, fraction: np.ndarray):
        """(phase, pressure it sees, weight) of every diffracting component."""
        out = [(self.material.low, pressure, 1 - fraction),
               (self.material.high, pressure, fraction)]
        art = self.artefacts
        if art.gasket:
            out.append((GASKETS[art.gasket], pressure * art.gasket_pressure_ratio,
                        np.ones_like(pressure)))
        if art.marker:
            out.append((MARKERS[art.marker], pressure, np.ones_like(pressure)))
        if art.medium:
            medium = MEDIA[art.medium]
            out.append((medium.phase, pressure, medium_weight(pressure, medium)))
        return out

    def _lines(self, phase: Phase, pressure: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """Noise-free lines of one component (n, L), without sparkle."""
        pos, inten = self.peaks(phase, pressure)
        area = inten * weight[:, None] * self._scale[phase.name]
        inst = self.instrument
        fwhm = line_widths(inst.fwhm(pressure), inst.strain(pressure), pos)
        return pseudo_voigt_sum(self.two_theta.astype(np.float32), pos.astype(np.float32),
                                 area.astype(np.float32), fwhm, inst.eta)

    def expected(self, pressure: np.ndarray, fraction: np.ndarray,
                 time: np.ndarray | None = None, chunk: int = 64) -> ExpectedCurves:
        """Noise-free mean counts (n, L) of curves at ``pressure`` with high-phase
        ``fraction``, by part; ``time`` (s) drives the beam-intensity drift. Each call draws
        fresh grain sparkle (the per-curve intensity jitter of coarse grains)."""
        pressure = np.atleast_1d(np.asarray(pressure, dtype=float))
        fraction = np.atleast_1d(np.asarray(fraction, dtype=float))
        inst, x = self.instrument, self.two_theta.astype(np.float32)
        fwhm = inst.fwhm(pressure)
        fwhm = fwhm + self.material.transformation_broadening * 4 * fraction * (1 - fraction)
        sparkle = max(inst.grain_noise, self.artefacts.sparkle)
        parts = []
        for phase, seen, weight in self._components(pressure, fraction):
            pos, inten = self.peaks(phase, seen)
            if sparkle > 0:
                inten = inten * np.exp(sparkle * self.rng.standard_normal(inten.shape))
            parts.append((pos, inten * weight[:, None] * self._scale[phase.name]))
        strain = inst.strain(pressure)
        low, high = (line_sum(x, [part], fwhm, inst.eta, chunk, strain) for part in parts[:2])
        other = line_sum(x, parts[2:], fwhm, inst.eta, chunk, strain) + self._background
        spots_pos, spots_height = self._spots
        if spots_pos.size:
            width = np.float32(0.7 * inst.fwhm0)
            d = (x[None, :] - spots_pos[:, None].astype(np.float32)) / (width / 2)
            other += (spots_height[:, None] * np.exp(-np.log(2) * d**2)).sum(0).astype(np.float32)
        art = self.artefacts
        if art.beam_drift > 0 and time is not None:
            beam = beam_intensity(time, art.beam_drift, art.topup_period)[:, None]
            low, high, other = (a * beam.astype(np.float32) for a in (low, high, other))
        return ExpectedCurves(low, high, other, fwhm)

    def counts(self, expected: ExpectedCurves) -> np.ndarray:
        """Curves in counts drawn from ``expected``: Poisson noise, hot pixels, detector gaps
        (NaN)."""
        out = self.rng.poisson(expected.total).astype(np.float32)
        if self._hot.size:
            out[:, self._hot] = self._hot_values.astype(np.float32)
        if self._gaps.any():
            out[:, self._gaps] = np.nan
        return out

    def curves(
        self, pressure: np.ndarray | float, phase_fraction: np.ndarray | None = None,
        time: np.ndarray | None = None,
    ) -> np.ndarray:
        """Noisy curves (n, L) float32 in counts at the true ``pressure`` (GPa).

        ``phase_fraction`` defaults to the equilibrium fraction on compression; ``time`` (s)
        drives the beam-intensity drift. Detector gaps are NaN.
        """
        pressure = np.atleast_1d(np.asarray(pressure, dtype=float))
        if phase_fraction is None:
            phase_fraction = self.phase_fraction(np.maximum.accumulate(pressure))
        return self.counts(self.expected(pressure, phase_fraction, time))


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


SimulationPreset = Literal["clean", "realistic", "shifted"]
PRESETS: tuple[str, ...] = ("clean", "realistic", "shifted")
# Beam energies (keV) of DAC diffraction beamlines the realistic preset draws from.
BEAMLINE_ENERGIES = (25.5, 29.2, 30.0, 33.2, 37.0, 42.7)


@dataclass(frozen=True)
class RunConditions:
    """What differs between loadings and beamtimes: one draw per run.

    The transition's onset and end move by ``onset_shift`` (GPa; non-hydrostatic stress and
    kinetics) and its width scales by ``width_scale``; the recorded pressure is
    ``pressure_gain · true + pressure_offset`` plus readback noise (gauge calibration error).
    """

    energy_kev: float = DEFAULT_ENERGY_KEV
    two_theta: tuple[float, float, int] = DEFAULT_GRID  # first, last (deg), points
    onset_shift: float = 0.0
    width_scale: float = 1.0
    pressure_gain: float = 1.0
    pressure_offset: float = 0.0
    readback_noise: float = 0.15
    instrument: Instrument = Instrument()
    artefacts: Artefacts = Artefacts()
    two_theta_offset: float = 0.0  # recorded 2θ − true 2θ (deg): detector calibration error

    def grid(self) -> np.ndarray:
        return np.linspace(self.two_theta[0], self.two_theta[1], int(self.two_theta[2]))

    def transition(self, material: Material) -> Material:
        """``material`` with this run's onset, width and hysteresis."""
        width = (material.end - material.onset) * self.width_scale
        back = (material.reverse_onset - material.reverse_end) * self.width_scale
        onset = max(material.onset + self.onset_shift, 0.2)
        reverse_onset = max(min(material.reverse_onset + self.onset_shift, onset), back + 0.01)
        return material.at(onset, onset + width, reverse_onset, max(reverse_onset - back, 0.0))

    def describe(self) -> dict[str, float | int | str]:
        """Flat attrs (NetCDF-safe) that record this draw."""
        art = self.artefacts
        strain = ({"strain_per_gpa": self.instrument.strain_per_gpa}
                  if self.instrument.strain_per_gpa else {})
        return {**strain,
            "onset_shift": self.onset_shift, "width_scale": self.width_scale,
            "pressure_gain": self.pressure_gain, "pressure_offset": self.pressure_offset,
            "readback_noise": self.readback_noise, "peak_counts": self.instrument.peak_counts,
            "fwhm0": self.instrument.fwhm0, "eta": self.instrument.eta,
            "two_theta_offset": self.two_theta_offset,
            "artefacts": ", ".join(
                f"{k}={round(v, 4) if isinstance(v, float) else v}"
                for k, v in vars(art).items()
                if v not in (0, 0.0, None) and v != getattr(Artefacts(), k)
                and not _disabled_by(art, k)),
        }


# settings that only matter when their artefact is on
_PARENT = {"diamond_amplitude": "diamond_spots", "gasket_amplitude": "gasket",
           "marker_amplitude": "marker",
           "gasket_pressure_ratio": "gasket", "medium_amplitude": "medium",
           "gap_width": "module_gaps", "topup_period": "beam_drift"}


def _disabled_by(art: Artefacts, key: str) -> bool:
    parent = _PARENT.get(key)
    return parent is not None and not getattr(art, parent)


def draw_conditions(
    material: str | Material, preset: SimulationPreset, rng: np.random.Generator,
    energy_kev: float | None = None,
) -> RunConditions:
    """One run's conditions. ``clean``: fixed instrument, no artefacts, the literature onset;
    ``realistic``: everything varies between runs and every artefact can occur (docs/simulator.md
    lists the distributions); ``shifted``: a realistic draw moved to conditions ``realistic``
    never produces (:func:`shifted_conditions`), to test models on what their training data
    never had. ``energy_kev`` fixes the beam energy."""
    mat = get_transition(material) if isinstance(material, str) else material
    if preset == "clean":
        return RunConditions(energy_kev=energy_kev or DEFAULT_ENERGY_KEV)
    if preset not in PRESETS:
        raise ValueError(f"unknown simulation preset {preset!r}; use one of {PRESETS}")
    cond = _realistic_conditions(mat, rng, energy_kev)
    return shifted_conditions(cond, rng, energy_kev) if preset == "shifted" else cond


def shifted_conditions(cond: RunConditions, rng: np.random.Generator,
                       energy_kev: float | None = None) -> RunConditions:
    """``cond`` moved outside the realistic preset: a high-energy beamline (50–80 keV, Q to
    7.5–9 Å⁻¹ on 3000–6000 points), broader, more Lorentzian lines (instrumental FWHM × 1.3–1.8,
    η 0.75–0.95), a pressure marker (Au or Pt) mixed with the sample and a 2θ calibration
    error of up to ±0.02°."""
    u = rng.uniform
    energy = energy_kev or float(u(50.0, 80.0))
    lam = energy_to_wavelength(energy)
    lo, hi = (float(q_to_two_theta(u(1.0, 1.4), lam)), float(q_to_two_theta(u(7.5, 9.0), lam)))
    inst = cond.instrument
    instrument = replace(inst, energy_kev=energy,
                         fwhm0=inst.fwhm0 * inst.energy_kev / energy * u(1.3, 1.8),
                         eta=u(0.75, 0.95))
    artefacts = replace(cond.artefacts, marker=["Au", "Pt"][int(rng.integers(2))],
                        marker_amplitude=u(0.1, 0.5))
    return replace(cond, energy_kev=energy, two_theta=(lo, hi, int(rng.integers(3000, 6001))),
                   instrument=instrument, artefacts=artefacts,
                   two_theta_offset=float(u(-0.02, 0.02)))


def _realistic_conditions(mat: Material, rng: np.random.Generator,
                          energy_kev: float | None) -> RunConditions:
    u = rng.uniform
    energy = energy_kev or float(rng.choice(BEAMLINE_ENERGIES))
    # the detector covers Q from ~1 Å⁻¹ to 6.2–7.5 Å⁻¹ at any energy
    lam = energy_to_wavelength(energy)
    lo, hi = (float(q_to_two_theta(u(0.8, 1.2), lam)), float(q_to_two_theta(u(6.2, 7.5), lam)))
    n_points = int(rng.integers(2500, 5001))
    peak_counts = float(np.exp(u(np.log(800), np.log(10_000))))
    instrument = Instrument(
        energy_kev=energy, fwhm0=u(0.02, 0.05) * 25.6 / energy * 1.5 ** 0.5, eta=u(0.3, 0.7),
        fwhm_per_gpa=u(0.0008, 0.0025), peak_counts=peak_counts,
        background_counts=peak_counts * u(0.02, 0.15), texture=u(0.15, 0.5),
        grain_noise=0.05,
    )
    topup = bool(rng.random() < 0.5)
    artefacts = Artefacts(
        diamond_spots=int(rng.poisson(1.5)), diamond_amplitude=u(0.2, 1.5),
        compton=u(0.3, 1.5),
        gasket=[None, "Re", "W"][int(rng.choice(3, p=[0.3, 0.45, 0.25]))],
        gasket_amplitude=u(0.02, 0.2), gasket_pressure_ratio=u(0.3, 0.8),
        medium=[None, "Ne", "Ar"][int(rng.choice(3, p=[0.3, 0.4, 0.3]))],
        medium_amplitude=u(0.05, 0.3), sparkle=u(0.05, 0.3), texture_drift=u(0.0, 0.3),
        module_gaps=int(rng.integers(0, 4)), gap_width=u(0.05, 0.2),
        hot_pixels=int(rng.integers(0, 6)),
        beam_drift=u(0.005, 0.03) if topup else u(0.0, 0.1),
        topup_period=u(60.0, 600.0) if topup else None,
    )
    spread = mat.onset_spread
    return RunConditions(
        energy_kev=energy, two_theta=(lo, hi, n_points),
        onset_shift=float(np.clip(spread * rng.standard_normal(), -2.5 * spread, 2.5 * spread)),
        width_scale=u(0.6, 1.6), pressure_gain=1 + 0.02 * rng.standard_normal(),
        pressure_offset=0.3 * rng.standard_normal(), readback_noise=u(0.05, 0.4),
        instrument=instrument, artefacts=artefacts,
    )


def simulate(material: str | Material = "Fe", curves: int = 300, *, seed: int = 0,
             preset: SimulationPreset = "clean", **kwargs: Any) -> xr.Dataset:
    """One simulated pressure run with its true labels.

    Parameters
    ----------
    material : str or Material
        A transition of the built-in library (``Fe``, ``FeO``, ``Si``, ...; see
        docs/transitions.md).
    curves : int
        Number of curves.
    seed : int
        Random seed (same seed, same run).
    preset : {"clean", "realistic"}
        ``realistic``: the run's own energy, grid, onset, counts, background and artefacts.
    **kwargs
        Further options of :func:`simulate_run` (``stop``, ``decompress_to``, ``cell``, ...).

    Returns
    -------
    xarray.Dataset
        The canonical layout, with ``label`` (ground truth) and ``phase_fraction``.

    Examples
    --------
    >>> ds = simulate("Fe", curves=40, seed=1)
    >>> sorted(set(ds["label"].values.tolist()))
    [0, 1, 2]
    """
    return simulate_run(material, curves, seed=seed, preset=preset, **kwargs)


def _conditions_dict(cond: RunConditions) -> dict[str, Any]:
    out = asdict(cond)
    out["two_theta"] = list(cond.two_theta)
    if not cond.instrument.strain_per_gpa:  # runs without strain record what they did
        del out["instrument"]["strain_per_gpa"]
    return out


def _conditions_from(values: dict[str, Any]) -> RunConditions:
    values = dict(values)
    return RunConditions(
        **{k: v for k, v in values.items() if k not in ("instrument", "artefacts",
                                                       "two_theta")},
        two_theta=tuple(values["two_theta"]),
        instrument=Instrument(**{k: (tuple(v) if isinstance(v, list) else v)
                                 for k, v in values["instrument"].items()}),
        artefacts=Artefacts(**values["artefacts"]))


def resimulate(ds: xr.Dataset) -> SimulatedRun | None:
    """The :class:`SimulatedRun` behind a Dataset specflow simulated from a built-in
    transition (its ``simulation`` attr), rebuilt and checked curve for curve against the
    stored intensities; None when it cannot be (another source, a CIF transition, or data
    changed since)."""
    recorded = ds.attrs.get("simulation")
    if not recorded:
        return None
    try:
        kwargs = json.loads(recorded)
        conditions = _conditions_from(kwargs.pop("conditions"))
        grid = kwargs.pop("two_theta")
        run = simulate_run_parts(kwargs.pop("material"), kwargs.pop("n_curves"),
                                 conditions=conditions,
                                 two_theta=None if grid is None else np.asarray(grid),
                                 **kwargs)
    except (ValueError, TypeError, KeyError):
        return None
    same = (run.data["intensity"].shape == ds["intensity"].shape
            and np.array_equal(run.data["intensity"].values, ds["intensity"].values,
                               equal_nan=True))
    return run if same else None


@dataclass
class SimulatedRun:
    """A simulated run with what made it: the Dataset, the simulator (the loading: phases,
    texture, artefacts) and the noise-free mean of every curve by part — the truth an ideal
    observer (:mod:`specflow.simulator.observer`) is given."""

    data: xr.Dataset
    simulator: XRDSimulator
    expected: ExpectedCurves


def simulate_run(material: str | Material = "Fe", n_curves: int = 300, **kwargs: Any
                 ) -> xr.Dataset:
    """Simulate one pressure run as a canonical spectra Dataset (keywords: those of
    :func:`simulate_run_parts`)."""
    return simulate_run_parts(material, n_curves, **kwargs).data


def simulate_run_parts(
    material: str | Material = "Fe",
    n_curves: int = 300,
    *,
    seed: int = 0,
    start: float = 0.5,
    stop: float | None = None,
    decompress_to: float | None = None,
    cell: CellKind = "dDAC",
    rate: float = 1.0,
    readback_noise: float | None = None,
    peak_counts: float | None = None,
    energy_kev: float | None = None,
    two_theta: np.ndarray | None = None,
    sample: str | None = None,
    run_uid: str | None = None,
    conditions: RunConditions | None = None,
    preset: SimulationPreset = "clean",
) -> xr.Dataset:
    """Simulate one pressure run: the canonical spectra Dataset with its simulator and
    noise-free truth (:class:`SimulatedRun`).

    ``conditions`` (default: drawn from ``preset`` with ``seed``) set the instrument, the
    run's own onset, the gauge calibration and the artefacts; ``readback_noise``,
    ``peak_counts``, ``energy_kev`` and ``two_theta`` override them. ``rate`` is the mean
    compression rate in GPa/s (sets the ``time`` coord). The Dataset carries the ground
    truth: ``true_label`` (when labels are noisy), ``phase_fraction``, ``true_pressure``;
    ``label`` is what a labeller would write (exact unless ``Artefacts.label_noise``).
    """
    mat = get_transition(material) if isinstance(material, str) else material
    rng = np.random.default_rng(seed)
    cond = conditions or draw_conditions(mat, preset, rng, energy_kev)
    if energy_kev is not None and cond.energy_kev != energy_kev:
        cond = replace(cond, energy_kev=energy_kev)
    inst = replace(cond.instrument, energy_kev=cond.energy_kev,
                   peak_counts=peak_counts or cond.instrument.peak_counts)
    noise = cond.readback_noise if readback_noise is None else readback_noise
    run_mat = cond.transition(mat)
    stop = stop if stop is not None else run_mat.end + 14.0
    true_p = pressure_path(n_curves, start, stop, cell=cell, decompress_to=decompress_to, rng=rng)
    grid = cond.grid() if two_theta is None else np.asarray(two_theta, dtype=float)
    sim = XRDSimulator(run_mat, cond.energy_kev, grid, seed=int(rng.integers(2**31)),
                       instrument=inst, artefacts=cond.artefacts)
    fraction = sim.phase_fraction(true_p)
    dt = np.abs(np.diff(true_p, prepend=true_p[0])).mean() / rate
    time = np.arange(n_curves) * dt
    expected = sim.expected(true_p, fraction, time=time)
    intensity = sim.counts(expected)
    recorded = (cond.pressure_gain * true_p + cond.pressure_offset
                + noise * rng.standard_normal(n_curves))
    truth = labels_from_fraction(fraction)
    thresholds = labeller_thresholds(n_curves, LABEL_THRESHOLD, cond.artefacts.label_noise, rng)
    attrs = {
        "sample": sample or mat.name,
        "material": mat.name,
        "energy": cond.energy_kev,
        "wavelength": energy_to_wavelength(cond.energy_kev),
        "cell": cell,
        "compression_rate": rate,
        "source": "specflow simulator",
        "preset": "custom" if conditions is not None else preset,
        "seed": seed,
        "transition_onset": run_mat.onset,
        "transition_end": run_mat.end,
        **cond.describe(),
    }
    if run_uid:
        attrs["run_uid"] = run_uid
    if isinstance(material, str) or material.name in TRANSITIONS:  # rebuildable by name
        attrs["simulation"] = json.dumps({
            "material": mat.name, "n_curves": n_curves, "seed": seed, "start": start,
            "stop": stop, "decompress_to": decompress_to, "cell": cell, "rate": rate,
            "readback_noise": readback_noise, "peak_counts": peak_counts,
            "energy_kev": energy_kev, "sample": sample, "run_uid": run_uid,
            "preset": preset, "conditions": _conditions_dict(cond),
            "two_theta": None if two_theta is None else np.asarray(two_theta).tolist()})
    extra = {"phase_fraction": fraction.astype(np.float32), "true_pressure": true_p}
    if cond.artefacts.label_noise > 0:
        extra["true_label"] = truth
    data = make_spectra(
        intensity,
        sim.two_theta + cond.two_theta_offset,
        recorded,
        time=time,
        label=labels_from_fraction(fraction, thresholds),
        attrs=attrs,
        extra=extra,
    )
    run = SimulatedRun(data, sim, expected)
    if mat.labels_by_sight:  # the "during" stretch ends where two phases can be seen
        for name in ("label", "true_label"):
            if name in data:
                data[name].values[:] = visible_labels(data[name].values, run)
    return run


def simulate_family(material: str | Material, n_runs: int, **kwargs: Any) -> list[xr.Dataset]:
    """Several loadings of one transition as Datasets (keywords: those of
    :func:`simulate_family_parts`)."""
    return [run.data for run in simulate_family_parts(material, n_runs, **kwargs)]


def simulate_family_parts(
    material: str | Material,
    n_runs: int,
    *,
    n_curves: int | tuple[int, int] = (150, 400),
    seed: int = 0,
    preset: SimulationPreset = "realistic",
    energy_kev: float | None = None,
    decompress_fraction: float = 0.25,
    mdac_fraction: float = 0.3,
    marker: str | None = None,
    broadening: str = "constant",
) -> list[SimulatedRun]:
    """Several loadings of one transition: ``n_runs`` runs with their own conditions, cell,
    length, ramp rate and (for ``decompress_fraction`` of them) a decompression leg;
    ``marker`` (``Au``, ``Pt``) is loaded with the sample in every run (its line strength
    drawn per run, as in the shifted preset); ``"any"``: each run draws none, Au or Pt.
    ``broadening`` (one of :data:`BROADENING_LAWS`): how pressure widens the lines."""
    check_broadening(broadening)
    mat = get_transition(material) if isinstance(material, str) else material
    rng = np.random.default_rng([seed, 7919])
    runs = []
    for i in range(n_runs):
        n = int(rng.integers(n_curves[0], n_curves[1] + 1)) if isinstance(n_curves, tuple) \
            else int(n_curves)
        run_seed = int(rng.integers(2**31))
        cond = draw_conditions(mat, preset, np.random.default_rng(run_seed), energy_kev)
        if marker is not None:
            marker_rng = np.random.default_rng([run_seed, 1])
            amplitude = float(marker_rng.uniform(0.1, 0.5))
            loaded = [None, *MARKERS][int(marker_rng.integers(len(MARKERS) + 1))] \
                if marker == ANY_MARKER else marker
            cond = replace(cond, artefacts=replace(cond.artefacts, marker=loaded,
                                                   marker_amplitude=amplitude))
        if broadening == "any":
            law_rng = np.random.default_rng([run_seed, 2])
            if law_rng.random() < 0.5:
                cond = replace(cond, instrument=cond.instrument.strain_law(
                    float(np.exp(law_rng.uniform(np.log(0.5), np.log(2.0))))))
        shifted = cond.transition(mat)
        decompress = bool(rng.random() < decompress_fraction)
        runs.append(simulate_run_parts(
            mat, n, seed=run_seed, conditions=cond,
            start=float(rng.uniform(0.3, max(0.5, shifted.onset - 6.0))),
            stop=shifted.end + float(rng.uniform(5.0, 14.0)),
            decompress_to=float(rng.uniform(0.5, max(1.0, shifted.reverse_end - 1.0)))
            if decompress else None,
            cell="mDAC" if rng.random() < mdac_fraction else "dDAC",
            rate=float(np.exp(rng.uniform(np.log(0.05), np.log(3.0)))),
            sample=f"{mat.name} run {i}", run_uid=f"sim-{mat.name}-{preset}-{seed}-{i}",
        ))
        runs[-1].data.attrs["preset"] = preset
    return runs


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
