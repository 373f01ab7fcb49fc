"""The transition library: structures, equations of state, per-formula-unit intensities, CIFs."""

from dataclasses import fields

import numpy as np
import pytest

from specflow.simulator.eos import BirchMurnaghan3
from specflow.simulator.phases import FE_BCC, FE_HCP, FEO_B1, FEO_RB1, Phase
from specflow.simulator.transitions import (
    TRANSITIONS,
    Transition,
    get_transition,
    transition_from_cifs,
    transitions_named,
)

E = 30.0  # keV
TOP = 38.0  # one cached reflection list per phase; windows below are cut from it
RECONSTRUCTIVE = ["Si", "Ge", "NaCl", "KCl", "ZnO", "ZnS", "GaN", "AlN"]


def pressures(t: Transition) -> np.ndarray:
    """The range a simulated run of ``t`` covers: onset - 10 (>= 0) to end + 20 GPa."""
    return np.linspace(max(t.onset - 10.0, 0.0), t.end + 20.0, 7)


def window_sum(phase: Phase, pressure: float, top: float = 35.0) -> float:
    """Σ |F|²·m·LP (per formula unit) of the reflections below 2θ ``top`` at 30 keV."""
    pos, inten = phase.peaks(np.array([pressure]), E, TOP)
    return float(inten[pos <= top].sum())


def test_library_holds_at_least_eight_documented_transitions():
    assert len(TRANSITIONS) >= 8
    for name, t in TRANSITIONS.items():
        assert t.name == name
        assert t.reverse_end < t.reverse_onset <= t.onset < t.end, name
        assert t.onset_spread > 0 and t.references and t.description, name
        assert t.low.name != t.high.name


def test_fields_line_up_with_the_simulators_material():
    names = [f.name for f in fields(Transition)]
    assert names[:8] == ["name", "low", "high", "onset", "end", "reverse_onset", "reverse_end",
                         "transformation_broadening"]
    fe, feo = TRANSITIONS["Fe"], TRANSITIONS["FeO"]
    assert (fe.low, fe.high) == (FE_BCC, FE_HCP) and (feo.low, feo.high) == (FEO_B1, FEO_RB1)
    assert (fe.onset, fe.end, fe.reverse_onset, fe.reverse_end) == (13.0, 16.0, 10.0, 7.5)
    assert (feo.onset, feo.end, feo.reverse_onset, feo.reverse_end) == (15.0, 19.0, 14.0, 11.0)
    assert (fe.transformation_broadening, feo.transformation_broadening) == (0.015, 0.005)


def test_get_transition_is_case_insensitive_and_lists_names():
    assert get_transition("NaCl") is TRANSITIONS["NaCl"]
    assert get_transition("nacl") is TRANSITIONS["NaCl"]
    with pytest.raises(ValueError, match="known: Fe, FeO"):
        get_transition("unobtainium")


def test_transition_rejects_inverted_pressures():
    with pytest.raises(ValueError, match="must exceed onset"):
        Transition("x", FE_BCC, FE_HCP, onset=5.0, end=4.0, reverse_onset=3.0, reverse_end=2.0)
    with pytest.raises(ValueError, match="reverse_onset"):
        Transition("x", FE_BCC, FE_HCP, onset=5.0, end=6.0, reverse_onset=2.0, reverse_end=3.0)


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_each_phase_has_reflections_and_a_monotone_eos_over_the_run(name):
    t = TRANSITIONS[name]
    p = pressures(t)
    for phase in (t.low, t.high):
        volume = phase.eos.volume(p)  # raises if the EOS does not cover the range
        assert np.all(np.diff(volume) < 0), phase.name
        pos, inten = phase.peaks(p, E, TOP)
        in_window = ((pos >= 3) & (pos <= 25)).sum(axis=1)
        assert in_window.min() >= 3, (phase.name, in_window)
        assert np.all(np.diff(pos, axis=0) > 0), phase.name  # peaks move up with pressure
        assert np.all(inten > 0)


def test_structures_have_the_expected_cells():
    atoms = {"Si": (8, 4), "Ge": (8, 4), "NaCl": (8, 2), "KCl": (8, 2), "ZnO": (4, 8),
             "ZnS": (8, 8), "GaN": (4, 8), "AlN": (4, 8)}
    for name, (n_low, n_high) in atoms.items():
        t = TRANSITIONS[name]
        for phase, n in ((t.low, n_low), (t.high, n_high)):
            structure = phase.structure(phase.lattice(np.array([0.0]))[0])
            assert len(structure) == n, phase.name  # guards pymatgen's origin choice


@pytest.mark.parametrize("name", RECONSTRUCTIVE)
def test_high_phase_is_denser_at_the_onset(name):
    change = TRANSITIONS[name].volume_change()
    assert -0.25 < change < -0.03, (name, change)


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_summed_intensity_is_conserved_through_the_transition(name):
    # Per formula unit, Σ|F|²·m·LP over a wide window is nearly the same for both phases
    # (it was 0.52 for FeO with per-cell intensities: 4 f.u. in B1, 3 in rB1).
    t = TRANSITIONS[name]
    ratio = window_sum(t.high, t.onset) / window_sum(t.low, t.onset)
    assert 0.75 < ratio < 1.33, (name, ratio)


def test_eos_rejects_bad_parameters():
    with pytest.raises(ValueError, match="positive"):
        BirchMurnaghan3(v0=-1.0, k0=100.0, k0_prime=4.0)
    with pytest.raises(ValueError, match="monotone"):
        BirchMurnaghan3(v0=10.0, k0=100.0, k0_prime=1.0)


# --- CIF files ------------------------------------------------------------------------------


def write_cif(phase: Phase, path, primitive: bool = False):
    from pymatgen.io.cif import CifWriter

    structure = phase.structure(phase.lattice(np.array([0.0]))[0])
    if primitive:
        structure = structure.get_primitive_structure()
    CifWriter(structure).write_file(str(path))
    return path


def test_transition_from_cifs_reproduces_the_built_in_nacl(tmp_path):
    nacl = TRANSITIONS["NaCl"]
    low = write_cif(nacl.low, tmp_path / "b1.cif")
    high = write_cif(nacl.high, tmp_path / "b2.cif")
    t = transition_from_cifs(low, high, 30.0, 34.0, k0_low=24.0, k0p_low=5.0, k0_high=26.9,
                             k0p_high=5.25)
    assert t.name == "NaCl" and (t.reverse_onset, t.reverse_end) == (28.0, 24.0)
    for cif_phase, built_in in ((t.low, nacl.low), (t.high, nacl.high)):
        assert cif_phase.eos.v0 == pytest.approx(built_in.eos.v0, rel=1e-6)
        for p in (5.0, 30.0, 50.0):
            mine, ref = cif_phase.peaks(np.array([p]), E, 25.0), built_in.peaks(np.array([p]),
                                                                                E, 25.0)
            a, b = np.unique(mine[0].round(3)), np.unique(ref[0].round(3))
            assert len(a) == len(b) and np.allclose(a, b, atol=0.05)
            assert mine[1].sum() == pytest.approx(ref[1].sum(), rel=1e-3)


def test_primitive_and_conventional_cells_give_the_same_intensities(tmp_path):
    nacl = TRANSITIONS["NaCl"]
    conv = write_cif(nacl.low, tmp_path / "conv.cif")
    prim = write_cif(nacl.low, tmp_path / "prim.cif", primitive=True)
    high = write_cif(nacl.high, tmp_path / "b2.cif")
    a = transition_from_cifs(conv, high, 30.0, 34.0).low
    b = transition_from_cifs(prim, high, 30.0, 34.0).low
    assert window_sum(a, 10.0, 25.0) == pytest.approx(window_sum(b, 10.0, 25.0), rel=1e-3)


def test_transition_from_cifs_rejects_bad_input(tmp_path):
    nacl = TRANSITIONS["NaCl"]
    low = write_cif(nacl.low, tmp_path / "b1.cif")
    high = write_cif(nacl.high, tmp_path / "b2.cif")
    with pytest.raises(ValueError, match="not found: .*missing.cif"):
        transition_from_cifs(tmp_path / "missing.cif", high, 30.0, 34.0)
    junk = tmp_path / "junk.cif"
    junk.write_text("this is not a CIF\n")
    with pytest.raises(ValueError, match="junk.cif"):
        transition_from_cifs(low, junk, 30.0, 34.0)
    with pytest.raises(ValueError, match="must exceed onset"):
        transition_from_cifs(low, high, 30.0, 30.0)
    with pytest.raises(ValueError, match="reverse_end < reverse_onset <= onset"):
        transition_from_cifs(low, high, 30.0, 34.0, reverse_onset=31.0)
    with pytest.raises(ValueError, match="b2.cif"):
        transition_from_cifs(low, high, 30.0, 34.0, k0_high=-5.0)


@pytest.mark.parametrize(("text", "names"), [
    ("Fe", ("Fe",)), ("feo", ("FeO",)), ("O1 Fe1", ("FeO",)), ("Fe0.95O", ("FeO",)),
    ("Fe2O2 powder", ("FeO",)), ("iron foil", ("Fe",)), ("Wüstite (FeO)", ("FeO",)),
    ("zinc oxide", ("ZnO",)), ("Si-II", ("Si",)), ("FeO in KCl", ("FeO", "KCl")),
    ("Fe3O4", ()), ("SiO2", ()), ("Zr", ()), ("S1", ()), ("", ()),
])
def test_a_sample_field_names_its_transition_by_formula_or_common_name(text, names):
    assert transitions_named(text) == names


def test_a_description_is_read_from_its_first_words_only():
    assert transitions_named("Zr in NaCl") == ("NaCl",)
    assert transitions_named("Zr in NaCl", leading=True) == ()
    assert transitions_named("zinc oxide in Ne", leading=True) == ("ZnO",)
