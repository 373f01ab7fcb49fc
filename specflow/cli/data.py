"""``specflow simulate`` and ``specflow plot``: simulated runs and their contour maps."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from specflow.cli.lazy import load
from specflow.cli.options import (
    AfterAboveOpt,
    BeforeBelowOpt,
    EnergyOpt,
    LabelsOpt,
    RadialUnitOpt,
    SeedOpt,
    WavelengthOpt,
    label_spec,
    read_options,
)

spectra_io = load("specflow.data.io")
sources = load("specflow.data.sources")
simulate_mod = load("specflow.simulator.simulate")
transitions = load("specflow.simulator.transitions")
plots = load("specflow.plots")
label_rules = load("specflow.data.labels")

console = Console()

class Cell(StrEnum):
    dDAC = "dDAC"
    mDAC = "mDAC"


class Preset(StrEnum):
    clean = "clean"
    realistic = "realistic"
    shifted = "shifted"
    paper = "paper"


def simulate(
    out: Path | None = typer.Option(None, "--out", "-o", help="Output .nc/.csv file, or a "
                                    "directory for --runs > 1 and --preset paper."),
    material: str = typer.Option("Fe", help="Transition of the built-in library (specflow "
                                 "simulate --list) or, with --cif, a name for it."),
    preset: Preset = typer.Option(Preset.clean, help="clean: one fixed instrument, the "
                                  "literature onset, no artefacts; realistic: every run its "
                                  "own energy, grid, counts, background, onset, gauge error "
                                  "and DAC/detector artefacts; shifted: realistic moved where "
                                  "it never goes (50–80 keV, broad Lorentzian lines, a Au/Pt "
                                  "marker, 2θ miscalibration); paper: the nine sets D1–D9."),
    runs: int = typer.Option(1, min=1, help="Loadings of the transition (files run0.nc …)."),
    curves: int = typer.Option(300, min=2, help="Number of curves per run."),
    seed: SeedOpt = 0,
    start: float = typer.Option(0.5, help="Start pressure (GPa)."),
    stop: float = typer.Option(None, help="Peak pressure (GPa); default: 14 GPa past the end "
                               "of the transition."),
    decompress_to: float = typer.Option(None, help="Decompress to this pressure (GPa) in the "
                                        "last third of the run."),
    cell: Cell = typer.Option(Cell.dDAC, help="dDAC (smooth ramp) or mDAC (membrane steps)."),
    rate: float = typer.Option(1.0, min=1e-6, help="Mean compression rate (GPa/s)."),
    energy: float = typer.Option(None, help="Beam energy (keV); default: the preset's."),
    peak_counts: float = typer.Option(None, help="Counts at the strongest ambient peak "
                                      "(signal-to-noise); default: the preset's."),
    cif: tuple[Path, Path] | None = typer.Option(None, help="Low- and high-pressure "
                                          "structures as CIF files instead of the library."),
    onset: tuple[float, float] | None = typer.Option(None, help="With --cif: onset and end "
                                              "pressure (GPa) of the transition."),
    files: str | None = typer.Option(None, "--files", help="xy: write each run as a folder "
                                     "of pyFAI-style .xy files (a curve per file, wavelength "
                                     "and pressure in the header, no labels: what a beamtime "
                                     "leaves) and the true labels in OUT/truth.csv."),
    list_: bool = typer.Option(False, "--list", help="List the built-in transitions."),
) -> None:
    """Simulate DAC pressure runs (pymatgen XRD + Birch–Murnaghan EOS) with true labels."""
    if list_:
        table = Table("name", "transition", "onset–end (GPa)", "reverse (GPa)")
        for name, t in transitions.TRANSITIONS.items():
            table.add_row(name, t.description, f"{t.onset:g}–{t.end:g}",
                          f"{t.reverse_onset:g}–{t.reverse_end:g}")
        console.print(table)
        return
    if out is None:
        raise typer.BadParameter("an output path is needed", param_hint="--out")
    if files not in (None, "xy"):
        raise typer.BadParameter(f"{files!r}: use xy", param_hint="--files")
    if files and preset == Preset.paper:
        raise typer.BadParameter("--files goes with --runs, not --preset paper",
                                 param_hint="--files")
    if preset != Preset.paper and runs == 1 and not files and \
            out.suffix.lower() not in (".nc", ".csv"):
        raise typer.BadParameter(f"{out}: write a .nc or .csv file (or a directory with "
                                 "--runs > 1)", param_hint="--out")
    if cif:
        if not onset:
            raise typer.BadParameter("--cif needs --onset ONSET END", param_hint="--onset")
        try:
            transition = transitions.transition_from_cifs(cif[0], cif[1], onset[0],
                                                          onset[1], name=material)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--cif") from None
    else:
        try:
            transition = transitions.get_transition(material)
        except ValueError as err:
            raise typer.BadParameter(str(err), param_hint="--material") from None
    if preset == Preset.paper:
        table = Table("set", "sample", "curves", "before/during/after", "file")
        with console.status("simulating D1–D9"):
            sets = simulate_mod.paper_datasets(seed=seed)
        out.mkdir(parents=True, exist_ok=True)
        for name, ds in sets.items():
            path = spectra_io.write_spectra(ds, out / f"{name}.nc")
            counts = [int((ds.label == k).sum()) for k in (0, 1, 2)]
            table.add_row(name, ds.attrs["sample"], str(ds.sizes["curve"]),
                          "/".join(map(str, counts)), str(path))
        console.print(table)
        return
    if runs > 1 or files:
        with console.status(f"simulating {runs} runs of {transition.name}"):
            family = simulate_mod.simulate_family(transition, runs, n_curves=curves,
                                                  seed=seed, preset=preset.value,
                                                  energy_kev=energy)
        out.mkdir(parents=True, exist_ok=True)
        table = Table("file", "curves", "energy (keV)", "onset (GPa)", "before/during/after")
        if files:
            label_rules.write_labels_table(
                {f"run{i}": ds for i, ds in enumerate(family)}, out / "truth.csv")
        for i, ds in enumerate(family):
            if files:
                spectra_io.write_xy(ds, out / f"run{i}")
                path = out / f"run{i}"
            else:
                path = spectra_io.write_spectra(ds, out / f"run{i}.nc")
            counts = [int((ds.label == k).sum()) for k in (0, 1, 2)]
            table.add_row(str(path), str(ds.sizes["curve"]), f"{ds.attrs['energy']:g}",
                          f"{ds.attrs['transition_onset']:.1f}", "/".join(map(str, counts)))
        console.print(table)
        return
    ds = simulate_mod.simulate_run(transition, curves, seed=seed, start=start, stop=stop,
                                   decompress_to=decompress_to, cell=cell.value, rate=rate,
                                   peak_counts=peak_counts, energy_kev=energy,
                                   preset=preset.value)
    path = spectra_io.write_spectra(ds, out)
    counts = [int((ds.label == k).sum()) for k in (0, 1, 2)]
    console.print(f"wrote {path}: {curves} curves of {transition.name} ({preset.value}), "
                  f"{float(ds.pressure.min()):.1f}–{float(ds.pressure.max()):.1f} GPa, "
                  f"labels before/during/after = {counts[0]}/{counts[1]}/{counts[2]}")


def plot(
    data: str = typer.Argument(..., help="One run: a file (.nc, .h5/.nxs, .csv, .xy …) or a "
                               "folder of its text files."),
    out: Path = typer.Option(..., "--out", "-o", help="Figure file (.png, .pdf, .svg)."),
    y: str = typer.Option("curve", help="Vertical axis: 'curve' (acquisition order) or "
                          "'pressure'."),
    labels: LabelsOpt = None,
    before_below: BeforeBelowOpt = None,
    after_above: AfterAboveOpt = None,
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
) -> None:
    """Draw the contour map of a run (2θ vs curve or pressure) with its labels beside it.

    The labels are the file's, or those --labels / --before-below / --after-above give:
    check them by eye before fitting on them."""
    ds = sources.read_one(data, label_spec(labels, before_below, after_above),
                          **read_options(energy, wavelength, radial_unit))
    path = plots.save_contour(ds, out, y_axis=y)
    console.print(f"wrote {path}")
