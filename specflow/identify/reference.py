"""The reference library for phase identification: stick patterns (Q, intensity) of named
crystal phases, computed offline with pymatgen's XRDCalculator.

Entries come from three sources, all available without network:

* ``aflow``: pymatgen's bundled AFLOW prototype library (288 prototypes), each with its own
  species and ``substitutions`` variants where every element is replaced by one of the same
  periodic-table group (lattice scaled by the atomic-radius ratio);
* ``specflow``: the phases of the simulator's built-in transitions (``Fe bcc (Im-3m)``,
  ``FeO rB1 (R-3m)``, ...) at their reference pressure;
* ``cif``: user CIF files (``specflow library add *.cif``).

Every entry carries a structure group (``prototype``, :func:`structure_type`): polymorphs of one
composition are separate entries, while every entry of one structure type — an AFLOW prototype,
its substituted variants, and the specflow or CIF phases of that type (Fe bcc with the A2
prototype, all rocksalts together) — shares a group, so a train/test split by group keeps
them on one side. Patterns are stored as sticks in Q (Å⁻¹),
independent of the beam energy; :mod:`specflow.identify.patterns` renders them on a grid.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version as _version
from pathlib import Path

import numpy as np
import pymatgen.analysis.prototypes as _prototypes
import xarray as xr
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Composition, Element, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.util.provenance import StructureNL

from specflow.data.schema import energy_to_wavelength
from specflow.simulator.corpus import cache_dir
from specflow.simulator.transitions import TRANSITIONS, read_cif

#: Q range (Å⁻¹) the library covers: 2θ 5–25° at 25.6 keV is Q 1.13–5.6.
Q_MAX = 6.5
#: The wavelength's only role is the Lorentz-polarisation factor pymatgen applies; this is
#: the simulator's default beam (25.6 keV).
REFERENCE_ENERGY_KEV = 25.6
MIN_RELATIVE_INTENSITY = 0.005
LIBRARY_FORMAT = "specflow-reference/1"
AFLOW_FILE = Path(_prototypes.__file__).parent / "aflow_prototypes.json.gz"
NOBLE = {"He", "Ne", "Ar", "Kr", "Xe", "Rn", "Og"}


@dataclass(frozen=True)
class ReferenceEntry:
    """One named phase: sticks at Q (Å⁻¹) with intensities scaled to a maximum of 1, for
    the lattice at ``pressure`` (GPa; 0 for ambient structures such as the prototypes)."""

    name: str
    formula: str
    space_group: str
    prototype: str
    source: str
    q: np.ndarray
    intensity: np.ndarray
    pressure: float = 0.0

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "formula": self.formula, "space_group": self.space_group}

    @cached_property
    def elements(self) -> frozenset[str]:
        """The chemical elements of the phase (``{"Fe", "O"}`` for FeO; parsed once, as
        every chemistry-filtered run asks every entry)."""
        return frozenset(str(e) for e in Composition(self.formula).elements)


def stick_pattern(structure: Structure, q_max: float = Q_MAX) -> tuple[np.ndarray, np.ndarray]:
    """(Q, intensity) of ``structure`` up to ``q_max`` from pymatgen's XRDCalculator, the
    strongest peak 1, peaks weaker than 0.5 % dropped."""
    wavelength = energy_to_wavelength(REFERENCE_ENERGY_KEV)
    two_theta_max = float(np.degrees(2 * np.arcsin(min(q_max * wavelength / (4 * np.pi), 1.0))))
    pattern = XRDCalculator(wavelength=wavelength).get_pattern(
        structure, scaled=False, two_theta_range=(0.5, two_theta_max))
    q = 4 * np.pi * np.sin(np.radians(np.asarray(pattern.x) / 2)) / wavelength
    intensity = np.asarray(pattern.y, dtype=float)
    if intensity.size == 0 or intensity.max() <= 0:
        raise ValueError(f"{structure.composition.reduced_formula}: no reflections below "
                         f"Q = {q_max} Å⁻¹")
    intensity = intensity / intensity.max()
    keep = intensity >= MIN_RELATIVE_INTENSITY
    return q[keep].astype(np.float32), intensity[keep].astype(np.float32)


def _space_group(structure: Structure) -> str:
    return structure.get_space_group_info(symprec=0.1)[0]


def structure_type(structure: Structure) -> str:
    """The structure group of a split: anonymised formula, space-group number and atoms in
    the conventional cell (spglib, tolerance 0.1 Å), e.g. ``type:AB_225_8`` for every
    rocksalt (NaCl, FeO, the AFLOW B1 prototype and its substitutions) and ``type:A_229_2``
    for every bcc element. A slightly distorted cell (FeO rB1) falls into its parent's group:
    near-duplicates stay on one side of a split."""
    sga = SpacegroupAnalyzer(structure, symprec=0.1)
    conventional = sga.get_conventional_standard_structure()
    return (f"type:{structure.composition.anonymized_formula}_"
            f"{sga.get_space_group_number()}_{len(conventional)}")


def entry_from_structure(structure: Structure, name: str, source: str,
                         space_group: str | None = None, group: str | None = None,
                         pressure: float = 0.0) -> ReferenceEntry:
    """A library entry for ``structure`` at ``pressure`` GPa (space group from spglib and
    structure group from :func:`structure_type` unless given)."""
    q, intensity = stick_pattern(structure)
    return ReferenceEntry(name, structure.composition.reduced_formula,
                          space_group or _space_group(structure),
                          group or structure_type(structure), source, q, intensity,
                          float(pressure))


def _substitute(structure: Structure, rng: np.random.Generator) -> Structure | None:
    """``structure`` with every element replaced by another of its periodic-table group (the
    volume scaled by the cube of the mean atomic-radius ratio), or None."""
    mapping: dict[str, str] = {}
    for element in structure.composition.elements:
        options = [e.symbol for e in Element if e.group == element.group and e.Z <= 83
                   and e.symbol not in NOBLE and e != element and e.atomic_radius is not None
                   and e.symbol not in mapping.values()]
        if not options or element.atomic_radius is None:
            return None
        mapping[element.symbol] = str(rng.choice(options))
    new = structure.copy()
    new.replace_species(mapping)
    new.scale_lattice(_radius_scaled_volume(structure, new))
    return new


def _radius_scaled_volume(prototype: Structure, variant: Structure) -> float:
    """``prototype``'s volume scaled by the cube of the mean atomic-radius ratio of
    ``variant``'s species to its own, site by site."""
    ratio = np.mean([float(b.specie.atomic_radius) / float(a.specie.atomic_radius)
                     for a, b in zip(prototype, variant, strict=True)])
    return prototype.volume * ratio**3


def _prototypes(limit: int | None = None) -> Iterator[tuple[Structure, str]]:
    """The bundled AFLOW prototypes (the first ``limit``): each structure with its label
    (Strukturbericht symbol, else mineral name, else Pearson symbol)."""
    with gzip.open(AFLOW_FILE) as handle:
        records = json.loads(handle.read())[:limit]
    for record in records:
        tags = record["tags"]
        yield (StructureNL.from_dict(record["snl"]).structure,
               next(str(tags[k]) for k in ("strukturbericht", "mineral", "pearson")
                    if str(tags.get(k) or "None") != "None"))


def aflow_entries(substitutions: int = 3, seed: int = 0, limit: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> list[ReferenceEntry]:
    """Entries of the bundled AFLOW prototypes (the first ``limit``), each with up to
    ``substitutions`` element-substituted variants in its group; ``progress(done, total)``
    after each prototype."""
    prototypes = list(_prototypes(limit))
    rng = np.random.default_rng(seed)
    out: list[ReferenceEntry] = []
    for number, (structure, label) in enumerate(prototypes, 1):
        if progress is not None:
            progress(number, len(prototypes))
        group = structure_type(structure)  # variants keep it: substitution keeps the type
        space_group = _space_group(structure)
        variants = [structure] + [_substitute(structure, rng) for _ in range(substitutions)]
        for variant in variants:
            if variant is None:
                continue
            formula = variant.composition.reduced_formula
            try:
                out.append(entry_from_structure(variant, f"{formula} {label} ({space_group})",
                                                "aflow", space_group, group))
            except ValueError:
                continue  # no reflections in range
    return out


def substituted_entries(elements: Iterable[str], limit: int | None = None
                        ) -> list[ReferenceEntry]:
    """Candidates made of ``elements`` for a sample the library has no phase of: every
    bundled AFLOW prototype with as many elements, each assignment of ``elements`` to its
    sites, at a plausible volume (:func:`_estimated_volume`; the compression scan absorbs
    the rest). Named like ``Zr in A3 (Mg-type, P6_3/mmc)``, in the prototype's structure
    group; polymorphs of one space group are kept apart."""
    wanted = sorted({str(e) for e in elements})
    if not all(Element.is_valid_symbol(e) for e in wanted):
        raise ValueError(f"not chemical elements: {wanted}")
    out: list[ReferenceEntry] = []
    for structure, label in _prototypes(limit):
        own = [e.symbol for e in structure.composition.elements]
        if len(own) != len(wanted) or any(Element(e).atomic_radius is None
                                          for e in own + wanted):
            continue
        group, space_group = structure_type(structure), _space_group(structure)
        prototype = structure.composition.reduced_formula
        for order in itertools.permutations(wanted):
            mapping = dict(zip(own, order, strict=True))
            variant = structure.copy()
            variant.replace_species(mapping)
            variant.scale_lattice(_estimated_volume(structure, variant))
            formula = variant.composition.reduced_formula
            try:
                out.append(entry_from_structure(
                    variant, f"{formula} in {label} ({prototype}-type, {space_group})",
                    "substituted:aflow", space_group, group))
            except ValueError:
                continue  # no reflections in range
    return out


AVOGADRO = 6.02214076e23
#: Changes with how candidates are made (volumes, names, sticks): older cached files unused
CANDIDATES_FORMAT = "c1"


def _atomic_volume(element: Element) -> float | None:
    """Volume per atom (Å³) of the element's own solid, from its molar volume."""
    molar = element.molar_volume
    return float(molar) * 1e24 / AVOGADRO if molar is not None else None


def _estimated_volume(prototype: Structure, variant: Structure) -> float:
    """A plausible cell volume for ``variant`` (``prototype`` with other elements): an
    element in a one-element prototype takes its own solid's volume per atom; otherwise
    the prototype's volume scaled by the ratio of the summed atomic volumes (by the cube
    of the atomic-radius ratio where a molar volume is missing)."""
    old = [_atomic_volume(site.specie) for site in prototype]
    new = [_atomic_volume(site.specie) for site in variant]
    if all(v is not None for v in old + new):
        if len(variant.composition.elements) == 1:
            return float(sum(new))
        return prototype.volume * sum(new) / sum(old)
    return _radius_scaled_volume(prototype, variant)


def candidate_library(elements: Iterable[str], refresh: bool = False) -> ReferenceLibrary:
    """:func:`substituted_entries` of ``elements`` as a library, built once (seconds to a
    minute) and cached beside the default library."""
    wanted = sorted({str(e) for e in elements})
    path = (cache_dir() / "library" / f"candidates-{CANDIDATES_FORMAT}-{'-'.join(wanted)}-"
            f"{AFLOW_FILE.name.split('.')[0]}.nc")
    if path.exists() and not refresh:
        return ReferenceLibrary.load(path)
    if path.with_suffix(".none").exists() and not refresh:
        raise ValueError(f"no bundled prototype takes {', '.join(wanted)}")
    entries = substituted_entries(wanted)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not entries:
        path.with_suffix(".none").touch()  # remembered: the prototypes are not read again
        raise ValueError(f"no bundled prototype takes {', '.join(wanted)}")
    return _cached(ReferenceLibrary(entries, {"substituted": wanted,
                                              "unique_by": ["formula", "prototype"]}), path)


def _cached(library: ReferenceLibrary, path: Path) -> ReferenceLibrary:
    """Save ``library`` at ``path`` atomically (a uniquely named partial file, then a
    rename: concurrent builders never read a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{uuid.uuid4().hex[:8]}.partial.nc")
    library.save(partial)
    partial.replace(path)
    return library


def specflow_entries() -> list[ReferenceEntry]:
    """The built-in transitions' phases at their reference pressure, with the space group
    their name gives (spglib's tolerance would call a slightly distorted rB1 cubic)."""
    out = []
    for name, transition in TRANSITIONS.items():
        for phase in (transition.low, transition.high):
            params = phase.lattice(np.array([phase.reference_pressure]))[0]
            structure = phase.structure(params)
            named = phase.name.rsplit("(", 1)[-1].rstrip(")") if "(" in phase.name else None
            out.append(entry_from_structure(structure, phase.name, f"specflow:{name}", named,
                                            pressure=phase.reference_pressure))
    return out


def cif_entries(paths: Iterable[str | Path], pressure: float = 0.0) -> list[ReferenceEntry]:
    """One entry per CIF file (its first structure), named ``<formula> (<space group>)``;
    ``pressure``: the GPa at which the CIF's lattice was measured (0: ambient)."""
    out = []
    for path in paths:
        structure = read_cif(path)
        space_group = _space_group(structure)
        formula = structure.composition.reduced_formula
        out.append(entry_from_structure(structure, f"{formula} ({space_group})",
                                        f"cif:{Path(path).name}", space_group,
                                        pressure=pressure))
    return out


def _legacy_pressure(source: str, name: str) -> float:
    """The lattice pressure of an entry saved before entries recorded it: the simulator's
    phases were rendered at their reference pressure, everything else at ambient."""
    transition = TRANSITIONS.get(source.removeprefix("specflow:")) if source.startswith(
        "specflow:") else None
    for phase in (transition.low, transition.high) if transition else ():
        if phase.name == name:
            return float(phase.reference_pressure)
    return 0.0


def parse_elements(text: str) -> frozenset[str]:
    """The elements of a sample given as a formula (``FeO``, ``Fe0.95O``) or a list
    (``Fe,O``); ValueError when it is neither."""
    parts = [p for p in text.replace(",", " ").split() if p]
    problem = f"{text!r} is not a chemical formula or a list of elements (e.g. 'FeO' or 'Fe,O')"
    try:
        elements = frozenset(str(getattr(e, "symbol", e)) for part in parts
                             for e in Composition(part).elements)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(problem) from exc
    if not all(Element.is_valid_symbol(e) for e in elements):
        raise ValueError(problem)  # pymatgen reads unknown symbols as dummy species
    if not elements:
        raise ValueError(f"{text!r} names no chemical element")
    return elements


class ReferenceLibrary:
    """Named stick patterns with provenance; unique by (formula, space group), or by the
    entry fields ``provenance["unique_by"]`` names.

    ``version`` is a short hash of the content (names, groups and sticks), so a model trained
    on a library and a Tiled annotation made with it name exactly the same library.
    """

    def __init__(self, entries: Sequence[ReferenceEntry], provenance: dict | None = None):
        seen: set[tuple[str, ...]] = set()
        kept = []
        unique_by = tuple((provenance or {}).get("unique_by", ("formula", "space_group")))
        for entry in entries:
            key = tuple(str(getattr(entry, field)) for field in unique_by)
            if key not in seen:  # the first source wins: specflow phases before prototypes
                seen.add(key)
                kept.append(entry)
        if not kept:
            raise ValueError("a reference library needs at least one entry")
        self.entries: list[ReferenceEntry] = kept
        self.provenance = dict(provenance or {})

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def groups(self) -> np.ndarray:
        return np.array([e.prototype for e in self.entries])

    @property
    def pressures(self) -> np.ndarray:
        """Each entry's lattice pressure (GPa)."""
        return np.array([e.pressure for e in self.entries], dtype=float)

    def within(self, elements: Iterable[str]) -> np.ndarray:
        """Mask of the entries made only of ``elements`` (a sample's chemistry: ``{"Fe",
        "O"}`` keeps Fe, FeO, Fe2O3, ... and drops NiO)."""
        allowed = {str(Element(e.strip().capitalize())) for e in elements}
        return np.array([e.elements <= allowed for e in self.entries])

    @property
    def version(self) -> str:
        digest = hashlib.sha256()
        for e in self.entries:
            digest.update(f"{e.name}|{e.prototype}|{e.space_group}|{e.pressure:g}".encode())
            digest.update(np.round(e.q, 4).tobytes())
            digest.update(np.round(e.intensity, 4).tobytes())
        return digest.hexdigest()[:12]

    def index(self, name: str) -> int:
        """Position of the entry called ``name`` (KeyError listing close names)."""
        for i, e in enumerate(self.entries):
            if e.name == name:
                return i
        close = [n for n in self.names if name.split()[0] in n][:8]
        raise KeyError(f"no library entry {name!r}; similar: {close}")

    def add(self, entries: Sequence[ReferenceEntry]) -> ReferenceLibrary:
        """A new library with ``entries`` appended (duplicates of existing phases skipped)."""
        sources = sorted({*self.provenance.get("sources", []), *(e.source.split(":")[0]
                                                                for e in entries)})
        return ReferenceLibrary([*self.entries, *entries], {**self.provenance,
                                                            "sources": sources})

    def to_dataset(self) -> xr.Dataset:
        """NetCDF-ready: sticks padded with NaN on (entry, peak), strings as coords."""
        width = max(len(e.q) for e in self.entries)
        q = np.full((len(self), width), np.nan, np.float32)
        intensity = np.full_like(q, np.nan)
        for i, e in enumerate(self.entries):
            q[i, : len(e.q)], intensity[i, : len(e.q)] = e.q, e.intensity
        coords = {key: ("entry", [getattr(e, key) for e in self.entries])
                  for key in ("name", "formula", "space_group", "prototype", "source")}
        coords["pressure"] = ("entry", self.pressures, {"units": "GPa"})
        attrs = {"format": LIBRARY_FORMAT, "version": self.version,
                 "provenance": json.dumps(self.provenance)}
        return xr.Dataset({"q": (("entry", "peak"), q, {"units": "1/angstrom"}),
                           "intensity": (("entry", "peak"), intensity)}, coords=coords,
                          attrs=attrs)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ReferenceLibrary:
        if ds.attrs.get("format") != LIBRARY_FORMAT:
            raise ValueError(f"not a specflow reference library (format "
                             f"{ds.attrs.get('format')!r}, expected {LIBRARY_FORMAT!r})")
        entries = []
        for i in range(ds.sizes["entry"]):
            q, intensity = ds["q"].values[i], ds["intensity"].values[i]
            keep = ~np.isnan(q)
            entries.append(ReferenceEntry(
                *(str(ds[key].values[i]) for key in ("name", "formula", "space_group",
                                                      "prototype", "source")),
                q[keep], intensity[keep],
                float(ds["pressure"].values[i]) if "pressure" in ds.coords
                else _legacy_pressure(str(ds["source"].values[i]), str(ds["name"].values[i]))))
        return cls(entries, json.loads(ds.attrs.get("provenance", "{}")))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.to_dataset().to_netcdf(path, engine="h5netcdf")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceLibrary:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return cls.from_dataset(ds.load())


def build_library(substitutions: int = 3, seed: int = 0, prototypes: int | None = None,
                  cifs: Sequence[str | Path] = (),
                  progress: Callable[[int, int], None] | None = None) -> ReferenceLibrary:
    """The default library: specflow's phases, the AFLOW prototypes (the first
    ``prototypes``; all 288 by default) with substitutions, and ``cifs``; ``progress(done,
    total)`` after each prototype."""
    entries = [*specflow_entries(), *aflow_entries(substitutions, seed, prototypes, progress),
               *cif_entries(cifs)]
    provenance = {
        "sources": sorted({e.source.split(":")[0] for e in entries}),
        "aflow_file": AFLOW_FILE.name,
        "prototypes": "all" if prototypes is None else prototypes,
        "substitutions": substitutions, "seed": seed, "q_max": Q_MAX,
        "reference_energy_kev": REFERENCE_ENERGY_KEV,
        "pymatgen": _version("pymatgen"), "created": _dt.datetime.now(_dt.UTC).isoformat(),
    }
    return ReferenceLibrary(entries, provenance)


def default_library_path() -> Path:
    """Where :func:`default_library` keeps the default library: ``<cache>/library/``, named
    by the bundled prototype file (a new one builds a new library)."""
    return cache_dir() / "library" / f"default-{AFLOW_FILE.name.split('.')[0]}-s3-seed0.nc"


def default_library(refresh: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> ReferenceLibrary:
    """The default library (:func:`build_library`'s defaults: 1,037 phases), built once
    (about a minute of CPU) and cached at :func:`default_library_path`; ``refresh``
    rebuilds it."""
    path = default_library_path()
    if path.exists() and not refresh:
        return ReferenceLibrary.load(path)
    return _cached(build_library(progress=progress), path)
