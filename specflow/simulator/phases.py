"""Crystal phases under pressure: pymatgen reflections + equation of state.

Each :class:`Phase` takes its reflection list (Miller indices and |F|²·multiplicity) once
from pymatgen's :class:`~pymatgen.analysis.diffraction.xrd.XRDCalculator` on a real crystal
structure, then moves the reflections with the lattice that the equation of state gives at
each pressure. Peak positions follow exactly from the lattice metric; intensities carry the
Lorentz–polarisation factor at the new angle (atomic form-factor changes with compression,
a few per cent, are neglected).

Intensities are per formula unit of sample: for a fixed amount of sample (N formula units)
the integrated intensity of a powder line is ∝ N · |F|²·m·LP / (Z · V_cell), with Z formula
units in a cell of volume V_cell. pymatgen gives |F|²·m per *cell*, so :func:`_reflections`
divides by Z·V_cell of the reference cell and :meth:`Phase.peaks` rescales by
V_cell(reference)/V_cell(p). The summed intensity over a wide 2θ window is then (nearly)
conserved through a transition instead of jumping with the size of the unit cell.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Composition, Lattice, Structure

from specflow.data.schema import energy_to_wavelength
from specflow.simulator.eos import BirchMurnaghan3

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
        """Miller indices (m, 3) and |F|²·multiplicity / (Z·V_cell) (m,) below 2θ max.

        Z is the number of formula units in the reference cell, V_cell its volume (Å³): the
        intensity scale is per formula unit of sample (see the module docstring).
        """
        return _reflections(self, round(energy_kev, 6), round(max_two_theta, 3))

    def peaks(
        self, pressure: np.ndarray, energy_kev: float, max_two_theta: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Peak positions 2θ (n, m) in degrees and integrated intensities (n, m).

        Intensity = reflections' |F|²·m/(Z·V_cell,ref) × LP(2θ) × V_cell,ref / V_cell(p), i.e.
        per formula unit of a fixed amount of sample at every pressure.
        """
        hkl, f2m = self.reflections(energy_kev, max_two_theta)
        params = self.lattice(np.atleast_1d(pressure))
        inv_d2 = _inverse_d_squared(params, hkl)
        sin_theta = energy_to_wavelength(energy_kev) * np.sqrt(inv_d2) / 2
        two_theta = np.degrees(2 * np.arcsin(np.clip(sin_theta, 0, 1)))
        reference = self.lattice(np.array([self.reference_pressure]))
        density = cell_volume(reference) / cell_volume(params)  # V_cell,ref / V_cell(p)
        return two_theta, f2m * lorentz_polarization(two_theta) * density[:, None]


def _metric(params: np.ndarray) -> np.ndarray:
    """Metric tensors (n, 3, 3) of lattice parameters (n, 6)."""
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    al, be, ga = (np.deg2rad(params[:, i]) for i in (3, 4, 5))
    metric = np.empty((len(params), 3, 3))
    metric[:, 0, 0], metric[:, 1, 1], metric[:, 2, 2] = a * a, b * b, c * c
    metric[:, 0, 1] = metric[:, 1, 0] = a * b * np.cos(ga)
    metric[:, 0, 2] = metric[:, 2, 0] = a * c * np.cos(be)
    metric[:, 1, 2] = metric[:, 2, 1] = b * c * np.cos(al)
    return metric


def _inverse_d_squared(params: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """1/d² (n, m) for lattice parameters (n, 6) and Miller indices (m, 3)."""
    h = hkl.astype(float)
    return np.einsum("mi,nij,mj->nm", h, np.linalg.inv(_metric(params)), h)


def cell_volume(params: np.ndarray) -> np.ndarray:
    """Cell volumes (n,) in Å³ of lattice parameters (n, 6)."""
    return np.sqrt(np.linalg.det(_metric(np.atleast_2d(params))))


def formula_units(structure) -> int:
    """Formula units Z in a pymatgen Structure's cell.

    pymatgen's reduction factor; for partial occupancies (e.g. Fe3.8 O4) the amounts are
    rounded to whole atoms first (-> Fe4 O4, Z = 4), since the factor of a non-integer
    composition is always 1.
    """

    comp = structure.composition
    whole = Composition({el: max(1, round(amount)) for el, amount in comp.items()})
    return int(whole.get_reduced_composition_and_factor()[1])


@lru_cache(maxsize=256)
def _reflections(phase: Phase, energy_kev: float, max_two_theta: float):

    ref = phase.lattice(np.array([phase.reference_pressure]))
    structure = phase.structure(ref[0])
    calc = XRDCalculator(wavelength=energy_to_wavelength(energy_kev))
    # The reference is the largest cell of a compression ramp; peaks only move up from it.
    with warnings.catch_warnings():  # noble-gas media: pymatgen warns, harmless for XRD
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        pattern = calc.get_pattern(structure, scaled=False,
                                   two_theta_range=(0.5, max_two_theta))
        per_unit = 1.0 / (formula_units(structure) * structure.volume)  # per formula unit
    hkl, f2m = [], []
    for x, y, families in zip(pattern.x, pattern.y, pattern.hkls, strict=True):
        total_mult = sum(f["multiplicity"] for f in families)
        for fam in families:
            idx = fam["hkl"]
            hkl.append((idx[0], idx[1], idx[-1]))  # Miller–Bravais (h k i l) -> (h k l)
            f2m.append(y / lorentz_polarization(x) * fam["multiplicity"] / total_mult * per_unit)
    return np.array(hkl, dtype=int).reshape(-1, 3), np.array(f2m, dtype=float)


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


def _tetragonal(
    eos: BirchMurnaghan3, units_per_cell: int, c_over_a: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Tetragonal lattice at fixed c/a holding ``units_per_cell`` EOS units."""

    def lattice(p: np.ndarray) -> np.ndarray:
        a = np.cbrt(units_per_cell * eos.volume(p) / c_over_a)
        n = len(a)
        return np.stack([a, a, c_over_a * a, *(np.full(n, 90.0),) * 3], axis=1)

    return lattice


def isotropic_lattice(
    eos: BirchMurnaghan3, reference: Sequence[float]
) -> Callable[[np.ndarray], np.ndarray]:
    """Lattice ``reference`` (a, b, c, α, β, γ at V = eos.v0) with all axes scaled by
    (V(p)/V0)^(1/3); angles kept."""
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (6,):
        raise ValueError(f"reference lattice needs 6 parameters, got shape {ref.shape}")

    def lattice(p: np.ndarray) -> np.ndarray:
        scale = np.cbrt(eos.volume(np.atleast_1d(p)) / eos.v0)
        out = np.tile(ref, (len(scale), 1))
        out[:, :3] *= scale[:, None]
        return out

    return lattice


def _structure(spacegroup: str, species: list[str], coords: list[list[float]]):
    key = (spacegroup, tuple(species), tuple(tuple(float(x) for x in c) for c in coords))

    def build(params: np.ndarray):

        lattice = Lattice.from_parameters(*params)
        orbit = _ORBITS.get(key)
        if orbit is None:  # pymatgen's space-group set-up takes ~1 s: do it once per site set
            full = Structure.from_spacegroup(spacegroup, lattice, species, coords)
            orbit = _ORBITS[key] = ([site.species for site in full], full.frac_coords.copy())
        return Structure(lattice, orbit[0], orbit[1])

    return build


# Fractional coordinates of all sites generated from a space group and its asymmetric unit:
# they do not depend on the lattice parameters (for a lattice of the group's system).
_ORBITS: dict[tuple, tuple[list, np.ndarray]] = {}


def template_structure(template) -> Callable[[np.ndarray], object]:
    """Builder that puts the sites of pymatgen Structure ``template`` (fractional coordinates,
    species or partial occupancies) into the lattice of one row of parameters."""
    species = [site.species for site in template]
    coords = np.array(template.frac_coords)

    def build(params: np.ndarray):

        return Structure(Lattice.from_parameters(*params), species, coords)

    return build


def phase_from_structure(
    name: str, structure, k0: float, k0_prime: float = 4.0
) -> Phase:
    """A phase from a pymatgen Structure taken as its zero-pressure cell.

    The EOS has V0 = cell volume / Z (Å³ per formula unit) and the given K0 (GPa), K0';
    under pressure the cell scales isotropically.
    """
    eos = BirchMurnaghan3(
        v0=structure.volume / formula_units(structure), k0=k0, k0_prime=k0_prime
    )
    return Phase(name, eos, isotropic_lattice(eos, structure.lattice.parameters),
                 template_structure(structure))


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
# The B1 -> rB1 transition is sharp, reversible and displacive (Shu, Mao, Hu, Fei & Hemley
# 1998, Neues Jahrb. Mineral. Abh. 172, 309-323, single crystal in helium): rB1 appears
# already distorted wherever the transition happens in a given loading, and the distortion
# grows with pressure. Strain values are approximate (rhombohedral angle ≈ 59.7° where rB1
# first appears, decreasing by a few hundredths of a degree per GPa); docs/transitions.md.
FEO_EOS = BirchMurnaghan3(v0=20.02, k0=149.0, k0_prime=4.0)
FEO_ONSET_GPA = 15.0
FEO_STRAIN_AT_ONSET = 6.0e-3  # elongation along [111] of rB1 where it first appears
FEO_STRAIN_PER_GPA = 1.0e-3  # growth of that elongation above the run's own onset


def feo_c_over_a(p: np.ndarray, onset: float = FEO_ONSET_GPA,
                 at_onset: float = FEO_STRAIN_AT_ONSET,
                 per_gpa: float = FEO_STRAIN_PER_GPA) -> np.ndarray:
    """c/a of rB1 FeO in hexagonal axes: √6 (cubic) × (1 + strain); the strain is
    ``at_onset`` where rB1 appears (``onset``, the run's own) and grows ``per_gpa`` above
    it."""
    above = np.clip(np.asarray(p, dtype=float) - onset, 0, None)
    return SQRT6 * (1 + at_onset + per_gpa * above)


FEO_B1 = Phase(
    "FeO B1 (Fm-3m)",
    FEO_EOS,
    _cubic(FEO_EOS, 4),
    _structure("Fm-3m", ["Fe", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
)


@lru_cache(maxsize=64)
def _feo_rhombohedral(onset: float, at_onset: float, per_gpa: float) -> Phase:
    return Phase(
        "FeO rB1 (R-3m)",
        FEO_EOS,
        _hexagonal(FEO_EOS, 3, partial(feo_c_over_a, onset=onset, at_onset=at_onset,
                                       per_gpa=per_gpa)),
        _structure("R-3m", ["Fe", "O"], [[0, 0, 0], [0, 0, 0.5]]),
        # a distorted reference keeps the split reflection families apart in pymatgen's list
        reference_pressure=onset + 10.0,
    )


def feo_rhombohedral(onset: float = FEO_ONSET_GPA, at_onset: float = FEO_STRAIN_AT_ONSET,
                     per_gpa: float = FEO_STRAIN_PER_GPA) -> Phase:
    """rB1 FeO of a loading whose transition starts at ``onset`` (GPa). The simulator before
    v3 (kept for comparisons) is ``feo_rhombohedral(15.0, 0.0, 1.5e-3)`` at every loading."""
    return _feo_rhombohedral(round(float(onset), 2), float(at_onset), float(per_gpa))


FEO_RB1 = feo_rhombohedral()
