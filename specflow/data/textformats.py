"""One integrated curve from a text file as facilities write them.

Recognised from the file's header (nothing to configure for these):

* pyFAI ``.xy``/``.dat``/``.xye``: the ``.poni`` JSON block or the older ``# Wavelength: … m``
  line, and the column line (``# 2th_deg I``, ``# q_nm^-1 I``, ``# q_A^-1 I``, ``# 2th_rad I``,
  ``# d_A I``);
* Dioptas and Fit2D ``.chi``: title, axis line (``2-Theta Angle (Degrees)``, ``Q (A^-1)``,
  ``2th_deg``, ``q_nm^-1``), ``Intensity``, point count;
* GSAS-II ``.fxye``/``.gsa``: the ``BANK … CONS … FXYE`` line; x in centidegrees;
* plain two- or three-column files: 2θ in degrees unless a header line names the unit;
* a ``pressure_GPa=<value>`` (or ``pressure: <value>``) line in the first 20 lines.

:func:`to_two_theta` places any of these radial axes on the canonical 2θ axis (degrees); Q and
d need the beam wavelength, which the header, the run or the caller gives.

:func:`write_xy_curve` and :func:`write_fxye_curve` write one curve the way pyFAI and GSAS-II
do, so that the files read back here and open in Dioptas and GSAS-II.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specflow.data.schema import SpectraValidationError, energy_to_wavelength, q_to_two_theta

#: Radial units specflow reads, by pyFAI's names
RADIAL_UNITS = ("2th_deg", "2th_rad", "q_nm^-1", "q_A^-1", "d_A", "2th_centideg")
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
_PRESSURE = re.compile(r"(?<![\w.])pressure(?:_GPa)?\s*[=:]\s*" + _NUMBER
                       + r"\s*(gpa|kbar|mpa)?(?![\w.,])", re.IGNORECASE)
PRESSURE_UNITS = {"gpa": 1.0, "kbar": 0.1, "mpa": 1e-3}
_TIME = re.compile(r"(?<![\w.])time_s\s*[=:]\s*" + _NUMBER + r"(?![\w.,])")
#: beam keys at the start of a header line (after comment marks, quotes and spaces), so
#: that e.g. "detector threshold energy" is not read as the beam's
_LINE_START = r"^[\s#!%\"']*"
_WAVELENGTH = re.compile(_LINE_START + r"(?:beam[ _])?wavelength[\"']?\s*[=:]\s*" + _NUMBER
                         + r"\s*(nm|m|Å|A|angstroms?)?(?![\w])", re.IGNORECASE)
_ENERGY = re.compile(_LINE_START + r"(?:beam|photon|x-?ray|incident|mono(?:chromator)?)?[ _]?"
                     r"energy(?:_kev)?[\"']?\s*[=:]\s*" + _NUMBER + r"\s*(kev|ev)?(?!\w)",
                     re.IGNORECASE)
_GSAS_BANK = re.compile(r"^\s*BANK\s+\d+\s+\d+\s+\d+\s+(\w+)(.*)$", re.IGNORECASE)
#: Header words → radial unit; the line nearest the data decides
_UNIT_WORDS = (
    ("q_nm^-1", re.compile(r"q_nm\^?-1|\bq\s*\(\s*(?:1/nm|nm\^?-1|nm⁻¹)\s*\)|\bq\s*\[\s*nm"
                           r"\^?-1", re.IGNORECASE)),
    ("q_A^-1", re.compile(r"q_a\^?-1|\bq\s*[(\[]\s*(?:1/a|1/å|a\^?-1|å\^?-1|å⁻¹|"
                          r"(?:inverse )?angstroms?(?:\^?-1)?)\s*[)\]]", re.IGNORECASE)),
    ("2th_rad", re.compile(r"2th_rad", re.IGNORECASE)),
    ("2th_deg", re.compile(r"2th_deg|2-?theta|two_theta|2θ|tth", re.IGNORECASE)),
    ("d_A", re.compile(r"\bd_a\b|d-?spacing", re.IGNORECASE)),
)


@dataclass(frozen=True)
class TextCurve:
    """What one text file holds: radial values in ``unit``, intensities, and the header's
    beam wavelength (Å) and pressure (GPa) when it gives them."""

    path: Path
    x: np.ndarray
    y: np.ndarray
    unit: str
    wavelength: float | None
    pressure: float | None
    time: float | None = None  # a "time_s=<s>" header line (what write_xy_curve's notes say)


def radial_unit_from(units: str, name_unit: str | None = None) -> str | None:
    """The radial unit a ``units`` string names (degrees, radians, 1/Å, 1/nm, in the ways
    NeXus and Bluesky write them), else ``name_unit``."""
    units = units.casefold().strip()
    if units.startswith(("deg", "°")):
        return "2th_deg"
    if units.startswith("rad"):
        return "2th_rad"
    if "nm" in units or "nano" in units:
        return "q_nm^-1"
    if "ang" in units or "å" in units or units in ("1/a", "a^-1", "a-1"):
        return "q_A^-1"
    return name_unit


def _wavelength_angstrom(value: float, unit: str | None) -> float:
    unit = (unit or "").casefold()
    if unit == "m" or (not unit and value < 1e-6):
        return value * 1e10  # pyFAI writes metres
    if unit == "nm":
        return value * 10
    return value


#: radial units pyFAI writes that have no 2θ equivalent here
_UNREAD_UNITS = re.compile(r"\br_mm\b|\br_m\b|d\*2|\bd_nm\b|\bchi_", re.IGNORECASE)


def _unit_of(line: str) -> str | None:
    if "-->" in line:  # pyFAI's "--> output path": a file name, not an axis
        return None
    if (found := _UNREAD_UNITS.search(line)):
        return f"unread:{found.group(0)}"
    for unit, pattern in _UNIT_WORDS:
        if pattern.search(line):
            return unit
    return None


def read_text_curve(path: str | Path) -> TextCurve:
    """Read one curve; raise :class:`SpectraValidationError` naming the file (and line)."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise SpectraValidationError([f"{path}: cannot read ({exc.strerror})"]) from None
    rows: list[tuple[float, float]] = []
    header: list[str] = []
    pressure = wavelength = energy = when = None
    unit = None
    for number, line in enumerate(lines, 1):
        if number <= 20 and pressure is None and (m := _PRESSURE.search(line)):
            pressure = float(m.group(1)) * PRESSURE_UNITS[(m.group(2) or "gpa").casefold()]
        if number <= 20 and when is None and (m := _TIME.search(line)):
            when = float(m.group(1))
        stripped = line.strip()
        comment = stripped.startswith(("#", "!", "%"))
        parts = [] if comment else stripped.replace(",", " ").split()
        if comment or not rows:
            if wavelength is None and (m := _WAVELENGTH.search(line)):
                wavelength = _wavelength_angstrom(float(m.group(1)), m.group(2))
            if energy is None and (m := _ENERGY.search(line)):
                energy = float(m.group(1))
                said = (m.group(2) or "").casefold()
                if said == "ev" or (not said and energy > 1000):  # eV, said or implied
                    energy /= 1000
            if (bank := _GSAS_BANK.match(line)) and not rows:
                if "FXYE" not in bank.group(2).upper():
                    raise SpectraValidationError(
                        [f"{path}:{number}: GSAS bank format {bank.group(1)} "
                         f"{bank.group(2).split()[-1] if bank.group(2).split() else ''} "
                         "is not read; export the pattern as FXYE (x y esd) from GSAS-II"])
                unit = "2th_centideg"
        if comment or not parts:
            if not rows:
                header.append(line)
            continue
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            if rows:  # text inside the data block: corrupt file, do not guess
                raise SpectraValidationError(
                    [f"{path}:{number}: not a 'radial intensity' row: {stripped[:60]!r}"]
                ) from None
            header.append(line)  # header line (title, axis names, point count)
    if len(rows) < 2:
        raise SpectraValidationError([f"{path}: no two-column numeric data found"])
    if unit is None:
        unit = next((u for line in reversed(header) if (u := _unit_of(line))), "2th_deg")
    if unit.startswith("unread:"):
        raise SpectraValidationError(
            [f"{path}: the radial unit {unit[7:]!r} has no 2θ equivalent here; integrate in "
             "2th_deg or q (pyFAI's unit=)"])
    if wavelength is None and energy:
        wavelength = energy_to_wavelength(energy)
    data = np.asarray(rows)
    if not np.isfinite(data[:, 0]).all():
        bad = int(np.flatnonzero(~np.isfinite(data[:, 0]))[0])
        raise SpectraValidationError(
            [f"{path}: radial value of data row {bad + 1} is {data[bad, 0]}: every row needs a "
             "finite position"])
    return TextCurve(path, data[:, 0], data[:, 1], unit, wavelength, pressure, when)


def radial_to_two_theta(x: np.ndarray, unit: str, wavelength: float | None,
                        source: str | Path) -> np.ndarray:
    """2θ (degrees) of radial values ``x`` in ``unit``, in their own order: 2θ as is, Q and d
    through Bragg's law with ``wavelength`` (Å); a Q or d axis without a wavelength, and
    values no beam of that wavelength reaches, are refused naming ``source`` and the fix."""
    x = np.asarray(x, dtype=float)
    if unit == "2th_centideg":
        return x / 100
    if unit == "2th_rad":
        return np.degrees(x)
    if unit == "2th_deg":
        return x
    if wavelength is None:
        raise SpectraValidationError(
            [f"{source}: the curve is in {unit}; placing it on the 2θ axis needs the beam "
             "wavelength: give --wavelength (Å) or --energy (keV), or wavelength=/energy_kev= "
             "when reading"])
    if unit == "d_A":
        with np.errstate(divide="ignore", invalid="ignore"):
            s = wavelength / (2 * x)
        tth = np.degrees(2 * np.arcsin(np.where((s > 0) & (s <= 1), s, np.nan)))
    else:
        try:
            tth = q_to_two_theta(x / 10 if unit == "q_nm^-1" else x, wavelength)
        except ValueError as exc:  # not an X-ray wavelength
            raise SpectraValidationError([f"{source}: {exc} (a wavelength in nm or an "
                                          "energy in eV?)"]) from None
    if np.isnan(tth).any():
        raise SpectraValidationError(
            [f"{source}: {unit} values up to {np.nanmax(np.abs(x)):g} are beyond what a "
             f"{wavelength:g} Å beam reaches (4π/λ = {4 * math.pi / wavelength:.3g} Å⁻¹): "
             "wrong wavelength or unit?"])
    return tth


def check_two_theta(tth: np.ndarray, x: np.ndarray, source: str | Path) -> None:
    """Refuse an increasing 2θ axis that is no 2θ in degrees or repeats a value."""
    if tth[-1] > 180 or tth[0] < 0:
        raise SpectraValidationError(
            [f"{source}: radial values {x.min():g}…{x.max():g} are not 2θ in degrees; "
             "name the unit in a header line (e.g. '# q_nm^-1 I', as pyFAI writes it) or "
             f"pass radial_unit= (one of {', '.join(RADIAL_UNITS[:5])})"])
    if np.any(np.diff(tth) <= 0):
        first = int(np.flatnonzero(np.diff(tth) <= 0)[0])
        raise SpectraValidationError(
            [f"{source}: radial value {tth[first]:g}° repeats: one curve per file expected"])


def stack_to_two_theta(axis: np.ndarray, intensity: np.ndarray, unit: str,
                       wavelength: float | None, source: str | Path
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Curves (n, L) that share one radial ``axis``: the increasing 2θ grid (degrees) and the
    curves' columns in its order, the axis converted once."""
    tth = radial_to_two_theta(axis, unit, wavelength, source)
    order = np.argsort(tth, kind="stable")
    check_two_theta(tth[order], np.asarray(axis, dtype=float), source)
    return tth[order], np.asarray(intensity)[:, order]


def to_two_theta(curve: TextCurve, wavelength: float | None) -> tuple[np.ndarray, np.ndarray]:
    """``curve`` on an increasing 2θ axis (degrees), see :func:`radial_to_two_theta`. The
    intensities are unchanged (only the axis is mapped), so nothing is lost."""
    tth, y = stack_to_two_theta(curve.x, curve.y.astype(float)[None], curve.unit, wavelength,
                                curve.path)
    return tth, y[0]


def write_xy_curve(path: str | Path, two_theta: np.ndarray, intensity: np.ndarray,
                   wavelength: float | None = None, notes: tuple[str, ...] = (),
                   keep_gaps: bool = False) -> Path:
    """One curve as pyFAI writes it: ``# Wavelength: … m``, ``notes`` (e.g.
    ``pressure_GPa=…``) and the ``2th_deg I`` column line. NaN points (detector gaps) are
    left out, as other programs expect, or with ``keep_gaps`` written as ``nan`` so that a
    run reads back on its own grid."""
    path = Path(path)
    keep = np.isfinite(intensity) | keep_gaps
    header = [*notes, *([f"Wavelength: {wavelength * 1e-10:.6e} m"] if wavelength else []),
              "2th_deg I"]
    np.savetxt(path, np.column_stack([two_theta[keep], intensity[keep]]),
               header="\n".join(header), fmt="%.6f %.8g")
    return path


def write_fxye_curve(path: str | Path, two_theta: np.ndarray, intensity: np.ndarray,
               title: str = "") -> Path:
    """One curve as GSAS-II's FXYE: a title, the ``BANK … CONS … FXYE`` line, then 2θ in
    centidegrees, intensity and esd √I; NaN points (gaps) left out."""
    path = Path(path)
    keep = np.isfinite(intensity)
    x, y = two_theta[keep], intensity[keep].astype(float)
    step = float(np.median(np.diff(x))) * 100
    lines = [title, f"BANK 1 {x.size} {x.size} CONS {x[0] * 100:.4f} {step:.4f} 0 0 FXYE"]
    lines += [f"{100 * a:.4f} {b:.6g} {math.sqrt(max(b, 1.0)):.4g}"
              for a, b in zip(x, y, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path
