"""Crystal phases under pressure: pymatgen reflections + equation of state.

Each :class:`Phase` takes its reflection list (Miller indices and |F|²·multiplicity) once
from pymatgen's :class:`~pymatgen.analysis.diffraction.xrd.XRDCalculator` on a real crystal
structure, then moves the reflections with the lattice that the equation of state gives at
each pressure. Peak positions follow exactly from the lattice metric; intensities carry the
Lorentz–polarisation factor at the new angle (atomic form-factor changes with compression,
a few per cent, are neglected).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from specflow.data.eos import BirchMurnaghan3
from specflow.data.schema import energy_to_wavelength

SQRT6 = math.sqrt(6.0)


def lorentz_polarization(two_theta_deg: np.ndarray) -> np.ndarray:
    """pymatgen's unpolarised Lorentz–polarisation factor (1+cos²2θ)/(sin²θ cosθ)."""
    theta = np.deg2rad(np.asarray(two_theta_deg) / 2)
    return (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))


@dataclass(frozen=True)
class Phase:
    """A crystal phase: structure builder, equation of state and lattice under pressure.

    ``lattice`` maps pressures (n,) to lattice parameters (n, 6): a, b, c (Å), α, β, γ (deg).
    ``structure`` builds the pymatgen Structure from one row of lattice parameters.
    """

    name: str
    eos: BirchMurnaghan3
    lattice: Callable[[np.ndarray], np.ndarray]
    structure: Callable[[np.ndarray], object]
    reference_pressure: float = 0.0

    def reflections(self, energy_kev: float, max_two_theta: float) -> tuple[np.ndarray, np.ndarray]:
        """Miller indices (m, 3) and |F|²·multiplicity (m,) of reflections below 2θ max."""
        return _reflections(self, round(energy_kev, 6), round(max_two_theta, 3))

    def peaks(
        self, pressure: np.ndarray, energy_kev: float, max_two_theta: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Peak positions 2θ (n, m) in degrees and integrated intensities (n, m)."""
        hkl, f2m = self.reflections(energy_kev, max_two_theta)
        inv_d2 = _inverse_d_squared(self.lattice(np.atleast_1d(pressure)), hkl)
        sin_theta = energy_to_wavelength(energy_kev) * np.sqrt(inv_d2) / 2
        two_theta = np.degrees(2 * np.arcsin(np.clip(sin_theta, 0, 1)))
        return two_theta, f2m * lorentz_polarization(two_theta)


def _inverse_d_squared(params: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """1/d² (n, m) for lattice parameters (n, 6) and Miller indices (m, 3)."""
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    al, be, ga = (np.deg2rad(params[:, i]) for i in (3, 4, 5))
    metric = np.empty((len(params), 3, 3))
    metric[:, 0, 0], metric[:, 1, 1], metric[:, 2, 2] = a * a, b * b, c * c
    metric[:, 0, 1] = metric[:, 1, 0] = a * b * np.cos(ga)
    metric[:, 0, 2] = metric[:, 2, 0] = a * c * np.cos(be)
    metric[:, 1, 2] = metric[:, 2, 1] = b * c * np.cos(al)
    reciprocal = np.linalg.inv(metric)
    h = hkl.astype(float)
    return np.einsum("mi,nij,mj->nm", h, reciprocal, h)


@lru_cache(maxsize=64)
def _reflections(phase: Phase, energy_kev: float, max_two_theta: float):
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    ref = phase.lattice(np.array([phase.reference_pressure]))
    calc = XRDCalculator(wavelength=energy_to_wavelength(energy_kev))
    # The reference is the largest cell of a compression ramp; peaks only move up from it.
    pattern = calc.get_pattern(
        phase.structure(ref[0]), scaled=False, two_theta_range=(0.5, max_two_theta)
    )
    hkl, f2m = [], []
    for x, y, families in zip(pattern.x, pattern.y, pattern.hkls, strict=True):
        total_mult = sum(f["multiplicity"] for f in families)
        for fam in families:
            idx = fam["hkl"]
            hkl.append((idx[0], idx[1], idx[-1]))  # Miller–Bravais (h k i l) -> (h k l)
            f2m.append(y / lorentz_polarization(x) * fam["multiplicity"] / total_mult)
    return np.array(hkl, dtype=int), np.array(f2m)


# --- built-in phases -------------------------------------------------------------------------


def _cubic(eos: BirchMurnaghan3, atoms_per_cell: int) -> Callable[[np.ndarray], np.ndarray]:
    def lattice(p: np.ndarray) -> np.ndarray:
        a = np.cbrt(atoms_per_cell * eos.volume(p))
        return np.stack([a, a, a, *(np.full_like(a, 90.0),) * 3], axis=1)

    return lattice


def _hexagonal(
    eos: BirchMurnaghan3, units_per_cell: int, c_over_a: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    def lattice(p: np.ndarray) -> np.ndarray:
        r = c_over_a(p)
        a = np.cbrt(units_per_cell * eos.volume(p) / (math.sqrt(3) / 2 * r))
        n = len(a)
        return np.stack([a, a, r * a, np.full(n, 90.0), np.full(n, 90.0), np.full(n, 120.0)], 1)

    return lattice


def _structure(spacegroup: str, species: list[str], coords: list[list[float]]):
    def build(params: np.ndarray):
        from pymatgen.core import Lattice, Structure

        lattice = Lattice.from_parameters(*params)
        return Structure.from_spacegroup(spacegroup, lattice, species, coords)

    return build


# Fe: bcc (α) EOS after Dewaele et al. 2015-like values; hcp (ε) after Dewaele et al. 2006.
FE_BCC_EOS = BirchMurnaghan3(v0=11.78, k0=170.0, k0_prime=4.9)
FE_HCP_EOS = BirchMurnaghan3(v0=11.214, k0=163.4, k0_prime=5.38)
FE_HCP_C_OVER_A = 1.603

FE_BCC = Phase(
    "Fe bcc (Im-3m)", FE_BCC_EOS, _cubic(FE_BCC_EOS, 2), _structure("Im-3m", ["Fe"], [[0, 0, 0]])
)
FE_HCP = Phase(
    "Fe hcp (P6_3/mmc)",
    FE_HCP_EOS,
    _hexagonal(FE_HCP_EOS, 2, lambda p: np.full(np.shape(p), FE_HCP_C_OVER_A)),
    _structure("P6_3/mmc", ["Fe"], [[1 / 3, 2 / 3, 0.25]]),
    reference_pressure=13.0,
)

# FeO (wüstite): cubic B1 (Fm-3m) and rhombohedral rB1 (R-3m, hexagonal setting, 3 f.u./cell).
FEO_EOS = BirchMurnaghan3(v0=20.02, k0=149.0, k0_prime=4.0)
FEO_ONSET_GPA = 15.0
FEO_STRAIN_PER_GPA = 1.5e-3  # rhombohedral elongation along [111] above the onset


def feo_c_over_a(p: np.ndarray) -> np.ndarray:
    """c/a of rB1 FeO in hexagonal axes: √6 (cubic) times 1 + strain growing from the onset."""
    return SQRT6 * (1 + FEO_STRAIN_PER_GPA * np.clip(np.asarray(p) - FEO_ONSET_GPA, 0, None))


FEO_B1 = Phase(
    "FeO B1 (Fm-3m)",
    FEO_EOS,
    _cubic(FEO_EOS, 4),
    _structure("Fm-3m", ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
)
FEO_RB1 = Phase(
    "FeO rB1 (R-3m)",
    FEO_EOS,
    _hexagonal(FEO_EOS, 3, feo_c_over_a),
    _structure("R-3m", ["Fe", "O"], [[0, 0, 0], [0, 0, 0.5]]),
    # a distorted reference keeps the split reflection families apart in pymatgen's list
    reference_pressure=FEO_ONSET_GPA + 10.0,
)
