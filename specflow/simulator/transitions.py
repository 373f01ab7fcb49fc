"""A library of well-documented room-temperature pressure-induced phase transitions.

Each :class:`Transition` pairs a low- and a high-pressure :class:`~specflow.simulator.phases.Phase`
(pymatgen structure + third-order Birch–Murnaghan EOS) with the pressures at which the
high-pressure fraction grows on compression and shrinks on decompression (hysteresis).
:data:`TRANSITIONS` holds the built-in ones, :func:`get_transition` looks one up by name,
:func:`transitions_named` finds the ones a run's free-text sample field names, and
:func:`transition_from_cifs` builds one from two CIF files.

Numbers are rounded literature values; docs/transitions.md lists them with their sources and
marks which are approximate, assumed or fitted (a high-pressure phase's V0 is often fitted so
that its volume at the onset gives the reported volume collapse).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
from pymatgen.core import Composition
from pymatgen.io.cif import CifParser

from specflow.simulator.eos import BirchMurnaghan3
from specflow.simulator.phases import (
    FE_BCC,
    FE_HCP,
    FEO_B1,
    FEO_ONSET_GPA,
    FEO_RB1,
    Phase,
    _cubic,
    _hexagonal,
    _structure,
    _tetragonal,
    feo_rhombohedral,
    phase_from_structure,
)

DEFAULT_K0 = 100.0  # GPa: generic placeholder bulk modulus for CIF phases; pass the real one
DEFAULT_K0_PRIME = 4.0
DEFAULT_HYSTERESIS = 2.0  # GPa: default reverse onset below the forward onset for CIF phases


@dataclass(frozen=True)
class Transition:
    """A sample with a pressure-induced transition from ``low`` to ``high``.

    The high-pressure fraction grows from 0 at ``onset`` to 1 at ``end`` (GPa) on
    compression and falls from 1 at ``reverse_onset`` to 0 at ``reverse_end`` on
    decompression (hysteresis: reverse_end < reverse_onset <= onset for the built-ins).
    ``transformation_broadening`` is the extra FWHM (deg) at 50 % coexistence,
    ``onset_spread`` the typical std (GPa) of the onset between loadings.
    ``high_at_onset`` builds the high phase of a loading whose transition starts at a given
    onset (a phase whose structure depends on where it appeared, e.g. FeO's distortion);
    ``inherits_texture``: the high phase's reflections keep the texture of the low phase's
    reflection they come from (displacive, group–subgroup transitions);
    ``labels_by_sight``: "during" starts and ends where two phases can be seen at the run's
    noise (:func:`specflow.simulator.observer.visible_labels`): a mixture with a few per cent of
    one phase is invisible in a weak run, and a label nobody can see is no label.
    """

    name: str
    low: Phase
    high: Phase
    onset: float
    end: float
    reverse_onset: float
    reverse_end: float
    transformation_broadening: float = 0.015
    onset_spread: float = 1.5
    references: tuple[str, ...] = ()
    description: str = ""
    high_at_onset: Callable[[float], Phase] | None = None
    inherits_texture: bool = False
    labels_by_sight: bool = True

    def __post_init__(self) -> None:
        if not self.end > self.onset:
            raise ValueError(f"{self.name}: end ({self.end}) must exceed onset ({self.onset})")
        if not self.reverse_onset > self.reverse_end:
            raise ValueError(
                f"{self.name}: reverse_onset ({self.reverse_onset}) must exceed reverse_end "
                f"({self.reverse_end})"
            )
        if self.transformation_broadening < 0 or self.onset_spread < 0:
            raise ValueError(f"{self.name}: broadening and onset spread must be >= 0")

    def at(self, onset: float, end: float, reverse_onset: float, reverse_end: float
           ) -> Transition:
        """This transition with other onset, end and reverse pressures (one loading's), its
        high phase rebuilt for that onset when it depends on it (``high_at_onset``)."""
        high = self.high_at_onset(onset) if self.high_at_onset is not None else self.high
        return replace(self, high=high, onset=onset, end=end, reverse_onset=reverse_onset,
                       reverse_end=reverse_end)

    def volume_change(self, pressure: float | None = None) -> float:
        """Relative volume change per formula unit, V_high/V_low - 1, at ``pressure``
        (default: the onset); negative for a denser high-pressure phase."""
        p = self.onset if pressure is None else pressure
        return float(self.high.eos.volume(p) / self.low.eos.volume(p) - 1.0)


# --- structure types ------------------------------------------------------------------------


def _fixed(ratio: float):
    return lambda p: np.full(np.shape(p), ratio)


def _rocksalt(formula: str, cation: str, anion: str, eos: BirchMurnaghan3) -> Phase:
    return Phase(f"{formula} B1 rocksalt (Fm-3m)", eos, _cubic(eos, 4),
                 _structure("Fm-3m", [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]]))


def _cesium_chloride(formula: str, cation: str, anion: str, eos: BirchMurnaghan3) -> Phase:
    return Phase(f"{formula} B2 CsCl-type (Pm-3m)", eos, _cubic(eos, 1),
                 _structure("Pm-3m", [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]]))


def _zincblende(formula: str, cation: str, anion: str, eos: BirchMurnaghan3) -> Phase:
    return Phase(f"{formula} B3 zincblende (F-43m)", eos, _cubic(eos, 4),
                 _structure("F-43m", [cation, anion], [[0, 0, 0], [0.25, 0.25, 0.25]]))


def _wurtzite(
    formula: str, cation: str, anion: str, eos: BirchMurnaghan3, c_over_a: float, u: float
) -> Phase:
    return Phase(f"{formula} B4 wurtzite (P6_3mc)", eos, _hexagonal(eos, 2, _fixed(c_over_a)),
                 _structure("P6_3mc", [cation, anion], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, u]]))


def _diamond(element: str, eos: BirchMurnaghan3) -> Phase:
    # pymatgen's default setting of Fd-3m is origin choice 1: 8a at (0, 0, 0), 8 atoms/cell
    return Phase(f"{element} diamond (Fd-3m)", eos, _cubic(eos, 8),
                 _structure("Fd-3m", [element], [[0, 0, 0]]))


def _beta_tin(element: str, eos: BirchMurnaghan3, c_over_a: float) -> Phase:
    # I4_1/amd origin choice 1 (pymatgen's default): 4a at (0, 0, 0), 4 atoms/cell
    return Phase(f"{element} β-Sn (I4_1/amd)", eos, _tetragonal(eos, 4, c_over_a),
                 _structure("I4_1/amd", [element], [[0, 0, 0]]))


def _hex_volume(a: float, c: float, units: int) -> float:
    return float(np.sqrt(3) / 2 * a * a * c / units)


# --- equations of state (V0 in Å³ per formula unit, K0 in GPa, K0') ---------------------------
# Sources and how sure each number is: docs/transitions.md.

SI_DIAMOND_EOS = BirchMurnaghan3(v0=20.02, k0=98.0, k0_prime=4.2)  # a0 = 5.431 Å
SI_BETA_SN_EOS = BirchMurnaghan3(v0=15.51, k0=110.0, k0_prime=4.0)  # V0 fitted, K0 assumed
SI_BETA_SN_C_OVER_A = 0.552  # a ≈ 4.686, c ≈ 2.585 Å near 12 GPa
GE_DIAMOND_EOS = BirchMurnaghan3(v0=22.64, k0=75.0, k0_prime=4.5)  # a0 = 5.658 Å
GE_BETA_SN_EOS = BirchMurnaghan3(v0=17.68, k0=90.0, k0_prime=4.0)  # V0 fitted, K0 assumed
GE_BETA_SN_C_OVER_A = 0.551  # a ≈ 4.884, c ≈ 2.692 Å near 11 GPa
NACL_B1_EOS = BirchMurnaghan3(v0=44.86, k0=24.0, k0_prime=5.0)  # a0 = 5.640 Å
NACL_B2_EOS = BirchMurnaghan3(v0=41.35, k0=26.9, k0_prime=5.25)
KCL_B1_EOS = BirchMurnaghan3(v0=62.30, k0=17.5, k0_prime=5.0)  # a0 = 6.293 Å
KCL_B2_EOS = BirchMurnaghan3(v0=54.9, k0=20.0, k0_prime=5.0)  # V0 fitted, K0 assumed
ZNO_WZ_EOS = BirchMurnaghan3(v0=round(_hex_volume(3.2496, 5.2042, 2), 2), k0=143.0, k0_prime=3.6)
ZNO_RS_EOS = BirchMurnaghan3(v0=19.60, k0=200.0, k0_prime=4.0)  # a0 ≈ 4.28 Å (recovered)
ZNS_ZB_EOS = BirchMurnaghan3(v0=39.57, k0=79.5, k0_prime=4.0)  # a0 = 5.409 Å
ZNS_RS_EOS = BirchMurnaghan3(v0=32.4, k0=117.6, k0_prime=4.0)  # V0 approximate
GAN_WZ_EOS = BirchMurnaghan3(v0=round(_hex_volume(3.189, 5.185, 2), 2), k0=210.0, k0_prime=4.0)
GAN_RS_EOS = BirchMurnaghan3(v0=18.66, k0=240.0, k0_prime=4.0)  # V0 fitted, K0 assumed
ALN_WZ_EOS = BirchMurnaghan3(v0=round(_hex_volume(3.112, 4.982, 2), 2), k0=208.0, k0_prime=4.0)
ALN_RS_EOS = BirchMurnaghan3(v0=16.55, k0=250.0, k0_prime=4.0)  # a0 ≈ 4.045 Å (recovered)

NO_REVERSION = "does not transform back on decompression; reverse set to 0.5 -> 0 GPa"
REVIEW_MUJICA = (
    "review: Mujica, Rubio, Muñoz & Needs 2003, Rev. Mod. Phys. (high-pressure phases of "
    "group-IV, III-V and II-VI compounds)"
)


def _library() -> dict[str, Transition]:
    """Build the built-in transitions (cheap: no pymatgen call until reflections are asked)."""
    entries = [
        Transition(
            "Fe", FE_BCC, FE_HCP, onset=13.0, end=16.0, reverse_onset=10.0, reverse_end=7.5,
            onset_spread=1.0,
            references=(
                "bcc EOS: rounded typical values (V0 11.78 Å³, K0 170 GPa, K0' 4.9)",
                "hcp EOS: Dewaele et al. 2006, Phys. Rev. Lett. (V0 11.214, K0 163.4, K0' 5.38)",
                "onset ~13 GPa and large hysteresis: e.g. Taylor, Pasternak & Jeanloz 1991, "
                "J. Appl. Phys.",
            ),
            description="bcc (α) -> hcp (ε), martensitic, ~5 % volume collapse",
        ),
        Transition(
            "FeO", FEO_B1, FEO_RB1, onset=FEO_ONSET_GPA, end=19.0, reverse_onset=14.0,
            reverse_end=11.0, transformation_broadening=0.005, onset_spread=2.5,
            references=(
                "B1 EOS: rounded typical values (V0 20.02 Å³, K0 149 GPa, K0' 4)",
                "rhombohedral distortion onset depends strongly on stress and Fe1-xO "
                "stoichiometry; literature onsets scatter widely around 15 GPa",
                "sharp, reversible, displacive B1 -> rB1 at 18 GPa in helium: Shu, Mao, Hu, "
                "Fei & Hemley 1998, Neues Jahrb. Mineral. Abh. 172, 309-323; rB1 appears with "
                "a finite [111] elongation (here 0.6 %, rhombohedral angle ≈ 59.7°, "
                "approximate) at the loading's own onset, growing 0.1 %/GPa",
            ),
            description="cubic B1 -> rhombohedral rB1, displacive distortion along [111]",
            high_at_onset=feo_rhombohedral, inherits_texture=True,
        ),
        Transition(
            "Si", _diamond("Si", SI_DIAMOND_EOS), _beta_tin("Si", SI_BETA_SN_EOS,
                                                           SI_BETA_SN_C_OVER_A),
            onset=11.5, end=13.0, reverse_onset=0.5, reverse_end=0.0, onset_spread=1.0,
            references=(
                "diamond: a0 5.431 Å, K0 ≈ 98 GPa, K0' ≈ 4.2 (typical literature values)",
                "β-Sn lattice near the transition: Jamieson 1963, Science",
                "β-Sn V0 fitted so that V(11.7 GPa) = 14.19 Å³/atom (~22 % collapse); "
                "K0 = 110 GPa, K0' = 4 assumed",
                "onset 11-12.5 GPa hydrostatic, lower under shear; " + REVIEW_MUJICA,
                "β-Sn goes on to Imma (~13 GPa) and simple hexagonal (~16 GPa), not modelled; "
                "on release it becomes r8/bc8, not diamond: " + NO_REVERSION,
            ),
            description="diamond (Si-I) -> β-Sn (Si-II), reconstructive, ~22 % collapse",
        ),
        Transition(
            "Ge", _diamond("Ge", GE_DIAMOND_EOS), _beta_tin("Ge", GE_BETA_SN_EOS,
                                                           GE_BETA_SN_C_OVER_A),
            onset=10.6, end=12.0, reverse_onset=0.5, reverse_end=0.0, onset_spread=1.0,
            references=(
                "diamond: a0 5.658 Å, K0 ≈ 75 GPa, K0' ≈ 4.5 (typical, approximate)",
                "β-Sn lattice near the transition: Jamieson 1963, Science",
                "β-Sn V0 fitted so that V(10.6 GPa) = 16.05 Å³/atom (~21 % collapse); "
                "K0 = 90 GPa, K0' = 4 assumed",
                "onset ~10-11 GPa hydrostatic; " + REVIEW_MUJICA,
                "on release β-Sn Ge becomes ST12 or BC8, not diamond: " + NO_REVERSION,
            ),
            description="diamond (Ge-I) -> β-Sn (Ge-II), reconstructive, ~21 % collapse",
        ),
        Transition(
            "NaCl", _rocksalt("NaCl", "Na", "Cl", NACL_B1_EOS),
            _cesium_chloride("NaCl", "Na", "Cl", NACL_B2_EOS),
            onset=30.0, end=34.0, reverse_onset=25.0, reverse_end=20.0, onset_spread=2.0,
            references=(
                "B1: a0 5.640 Å, K0 ≈ 24 GPa, K0' ≈ 5 (rounded; cf. Decker 1971, "
                "J. Appl. Phys.)",
                "B2: V0 41.35 Å³, K0 26.9 GPa, K0' 5.25 after Sata et al. 2002, "
                "Phys. Rev. B (rounded)",
                "onset ~27-30 GPa at room temperature (e.g. Bassett et al. 1968, "
                "J. Appl. Phys.); reverse pressures approximate (B2 persists several GPa "
                "below the onset on release)",
            ),
            description="B1 (rocksalt) -> B2 (CsCl-type), reconstructive, ~5 % collapse",
        ),
        Transition(
            "KCl", _rocksalt("KCl", "K", "Cl", KCL_B1_EOS),
            _cesium_chloride("KCl", "K", "Cl", KCL_B2_EOS),
            onset=2.0, end=2.6, reverse_onset=1.6, reverse_end=1.0, onset_spread=0.3,
            references=(
                "B1: a0 6.293 Å, K0 ≈ 17.5 GPa, K0' ≈ 5 (rounded; cf. Decker 1971, "
                "J. Appl. Phys.)",
                "B2: V0 fitted for the ~11 % volume collapse at 2 GPa; K0 = 20 GPa, K0' = 5 "
                "assumed (measured B2 EOS: Walker et al. 2002, Am. Mineral.; not used here)",
                "onset ~1.9-2.0 GPa hydrostatic (classic value); reverse pressures approximate",
            ),
            description="B1 (rocksalt) -> B2 (CsCl-type), reconstructive, ~11 % collapse",
        ),
        Transition(
            "ZnO", _wurtzite("ZnO", "Zn", "O", ZNO_WZ_EOS, 5.2042 / 3.2496, 0.382),
            _rocksalt("ZnO", "Zn", "O", ZNO_RS_EOS),
            onset=9.0, end=10.5, reverse_onset=2.5, reverse_end=1.0, onset_spread=1.0,
            references=(
                "wurtzite: a 3.2496, c 5.2042 Å, u 0.382; K0 ≈ 143 GPa, K0' ≈ 3.6 "
                "(rounded, after Desgreniers 1998, Phys. Rev. B; reported K0 range 140-185)",
                "rocksalt: a0 ≈ 4.28 Å of recovered B1 ZnO (Science 1962, 'New high-pressure "
                "polymorph of zinc oxide'); K0 = 200 GPa, K0' = 4 typical (reported ~190-230)",
                "onset ~9 GPa (reported 8.7-9.1); rocksalt persists to ~2 GPa on release "
                "(approximate); " + REVIEW_MUJICA,
            ),
            description="B4 (wurtzite) -> B1 (rocksalt), reconstructive, ~16 % collapse",
        ),
        Transition(
            "ZnS", _zincblende("ZnS", "Zn", "S", ZNS_ZB_EOS),
            _rocksalt("ZnS", "Zn", "S", ZNS_RS_EOS),
            onset=13.0, end=15.5, reverse_onset=10.0, reverse_end=8.0, onset_spread=1.5,
            references=(
                "zincblende: a0 5.409 Å, K0 79.5 GPa, K0' 4; rocksalt K0 117.6 GPa, K0' 4 "
                "(Desgreniers, Beaulieu & Lepage 2000, Phys. Rev. B)",
                "rocksalt V0 approximate (a0 ≈ 5.06 Å, ~15 % collapse at the onset)",
                "onset reported 12 GPa (XRD, Desgreniers et al. 2000) to ~15 GPa (earlier "
                "work); reverse pressures approximate; " + REVIEW_MUJICA,
            ),
            description="B3 (zincblende) -> B1 (rocksalt), reconstructive, ~15 % collapse",
        ),
        Transition(
            "GaN", _wurtzite("GaN", "Ga", "N", GAN_WZ_EOS, 5.185 / 3.189, 0.377),
            _rocksalt("GaN", "Ga", "N", GAN_RS_EOS),
            onset=48.0, end=55.0, reverse_onset=30.0, reverse_end=25.0, onset_spread=3.0,
            references=(
                "wurtzite: a 3.189, c 5.185 Å, u 0.377; K0 = 210 GPa, K0' = 4 (reported K0 "
                "~190-245 GPa)",
                "rocksalt: V0 fitted for a ~17 % collapse at the onset; K0 = 240 GPa, K0' = 4 "
                "assumed",
                "onset reported ~37-52 GPa, ~50 GPa typical; large hysteresis, reverse "
                "pressures approximate; " + REVIEW_MUJICA,
            ),
            description="B4 (wurtzite) -> B1 (rocksalt), reconstructive, ~17 % collapse",
        ),
        Transition(
            "AlN", _wurtzite("AlN", "Al", "N", ALN_WZ_EOS, 4.982 / 3.112, 0.382),
            _rocksalt("AlN", "Al", "N", ALN_RS_EOS),
            onset=20.0, end=24.0, reverse_onset=0.5, reverse_end=0.0, onset_spread=3.0,
            references=(
                "wurtzite: a 3.112, c 4.982 Å, u 0.382; K0 ≈ 208 GPa (reported ~185-210), "
                "K0' = 4 assumed",
                "rocksalt: a0 ≈ 4.045 Å of the recovered metastable B1 phase; K0 = 250 GPa, "
                "K0' = 4 assumed (reported ~220-270)",
                "onset reported ~14-23 GPa depending on sample and stress; the B1 phase is "
                "recovered at ambient: " + NO_REVERSION + "; " + REVIEW_MUJICA,
            ),
            description="B4 (wurtzite) -> B1 (rocksalt), reconstructive, ~20 % collapse",
        ),
    ]
    return {t.name: t for t in entries}


TRANSITIONS: dict[str, Transition] = _library()


def get_transition(name: str) -> Transition:
    """The built-in transition called ``name`` (case-insensitive)."""
    if name in TRANSITIONS:
        return TRANSITIONS[name]
    folded = {key.casefold(): t for key, t in TRANSITIONS.items()}
    try:
        return folded[str(name).casefold()]
    except KeyError:
        raise ValueError(
            f"unknown transition {name!r}; known: {', '.join(TRANSITIONS)}"
        ) from None


# --- transitions from CIF files -------------------------------------------------------------


def read_cif(path: str | Path):
    """The first structure in CIF ``path`` (conventional cell); ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CIF file not found: {path}")

    try:
        structures = CifParser(path).parse_structures(primitive=False, on_error="raise")
    except Exception as exc:  # pymatgen raises many kinds on malformed files
        raise ValueError(f"could not read a crystal structure from CIF {path}: {exc}") from exc
    if not structures or len(structures[0]) == 0:
        raise ValueError(f"CIF {path} holds no crystal structure")
    return structures[0]


def _cif_phase(path: Path, structure, k0: float, k0_prime: float, role: str) -> Phase:
    try:
        symbol = structure.get_space_group_info()[0]
    except Exception:  # spglib can fail on odd cells; the symbol is only a label
        symbol = "?"
    name = f"{structure.composition.reduced_formula} {symbol} ({path.name}, {role})"
    try:
        return phase_from_structure(name, structure, k0, k0_prime)
    except ValueError as exc:
        raise ValueError(f"bad equation of state for CIF {path}: {exc}") from exc


def transition_from_cifs(
    low_cif: str | Path,
    high_cif: str | Path,
    onset: float,
    end: float,
    *,
    reverse_onset: float | None = None,
    reverse_end: float | None = None,
    k0_low: float = DEFAULT_K0,
    k0p_low: float = DEFAULT_K0_PRIME,
    k0_high: float = DEFAULT_K0,
    k0p_high: float = DEFAULT_K0_PRIME,
    name: str | None = None,
    transformation_broadening: float = 0.015,
    onset_spread: float = 1.5,
) -> Transition:
    """A transition between the structures of two CIF files.

    Each CIF cell is taken as the zero-pressure cell: V0 = cell volume / Z (Å³ per formula
    unit), K0/K0' as given (defaults: the generic 100 GPa and 4; pass the material's values).
    Under pressure the CIF lattice scales isotropically. ``reverse_onset`` defaults to
    ``onset - 2`` GPa and ``reverse_end`` to ``reverse_onset - (end - onset)``.
    """
    if not end > onset:
        raise ValueError(f"end ({end} GPa) must exceed onset ({onset} GPa)")
    if reverse_onset is None:
        reverse_onset = onset - DEFAULT_HYSTERESIS
    if reverse_end is None:
        reverse_end = reverse_onset - (end - onset)
    if not reverse_end < reverse_onset <= onset:
        raise ValueError(
            f"need reverse_end < reverse_onset <= onset, got {reverse_end}, {reverse_onset}, "
            f"{onset} GPa"
        )
    low_path, high_path = Path(low_cif), Path(high_cif)
    low_structure, high_structure = read_cif(low_path), read_cif(high_path)
    low = _cif_phase(low_path, low_structure, k0_low, k0p_low, "low")
    high = _cif_phase(high_path, high_structure, k0_high, k0p_high, "high")
    return Transition(
        name or low_structure.composition.reduced_formula, low, high, onset=onset, end=end,
        reverse_onset=reverse_onset, reverse_end=reverse_end,
        transformation_broadening=transformation_broadening, onset_spread=onset_spread,
        references=(f"low: {low_path.name}", f"high: {high_path.name}",
                    f"EOS: V0 from the CIF cells; K0 {k0_low}/{k0_high} GPa, "
                    f"K0' {k0p_low}/{k0p_high}"),
        description=f"{low.name} -> {high.name} (from CIF files)",
    )


#: Names other than the formula that a run's metadata may give a built-in transition's sample
COMMON_NAMES = {
    "iron": "Fe", "wüstite": "FeO", "wustite": "FeO", "silicon": "Si", "germanium": "Ge",
    "sodium chloride": "NaCl", "halite": "NaCl", "rock salt": "NaCl", "rocksalt": "NaCl",
    "potassium chloride": "KCl", "sylvite": "KCl", "zinc oxide": "ZnO", "zincite": "ZnO",
    "zinc sulfide": "ZnS", "zinc sulphide": "ZnS", "sphalerite": "ZnS", "zinc blende": "ZnS",
    "zincblende": "ZnS", "gallium nitride": "GaN", "aluminium nitride": "AlN",
    "aluminum nitride": "AlN",
}
_FORMULA = re.compile(r"(?:[A-Z][a-z]?\d*(?:\.\d+)?)+")


def transitions_named(text: str, leading: bool = False) -> tuple[str, ...]:
    """The built-in transitions a sample field names, in the order they appear: the whole
    text as a transition name (any case) or formula (``O1 Fe1``, ``Fe0.95O``), else each
    word as a name or formula (``FeO powder``: exact case) or a common name (``iron``,
    ``zinc oxide``: :data:`COMMON_NAMES`). Several (``FeO in KCl``) are all returned: which
    is the sample is the caller's question. ``leading``: only the text's first word (or
    two, for a common name), where a free-text description puts its sample (``Fe run 3``,
    not the medium of ``Zr in NaCl``)."""
    text = str(text).strip()
    if not text:
        return ()
    whole = _by_formula(text)
    if whole is not None:
        return (whole,)
    try:
        return (get_transition(text).name,)
    except ValueError:
        pass
    words = re.findall(r"[^\W_](?:[^\W_]|\.(?=\d))*", text)  # Fe0.95O is one word
    found: list[str] = []
    for i, word in enumerate(words[:1] if leading else words):
        name = (COMMON_NAMES.get(" ".join(words[i:i + 2]).casefold()) or
                COMMON_NAMES.get(word.casefold()) or
                (_by_formula(word) if _FORMULA.fullmatch(word) else None))
        if name is not None and name not in found:
            found.append(name)
    return tuple(found)


def _by_formula(text: str) -> str | None:
    """The built-in transition whose formula ``text`` is, reduced and within 5 % of each
    element's share (``Fe2O2`` and wüstite's ``Fe0.95O`` are FeO); None if none is."""
    try:
        with warnings.catch_warnings():  # pymatgen warns about some elements' properties
            warnings.simplefilter("ignore")
            share = Composition(text).fractional_composition
    except Exception:  # pymatgen raises several kinds on what is not a formula
        return None
    return next((name for name, known in _formulas().items()
                 if known.almost_equals(share, rtol=0.05)), None)


@cache
def _formulas() -> dict[str, Composition]:
    return {name: Composition(name).fractional_composition for name in TRANSITIONS}
