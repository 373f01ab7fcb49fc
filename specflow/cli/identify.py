"""CLI of phase identification: ``specflow library build|add``, ``train-identifier``,
``identify``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from specflow.cli.lazy import load
from specflow.cli.options import (
    DEFAULT_ALIAS,
    AliasOpt,
    ApiKeyOpt,
    EnergyOpt,
    JsonOpt,
    LayoutOpt,
    RadialUnitOpt,
    SeedOpt,
    WavelengthOpt,
    WorkdirOpt,
    read_options,
)
from specflow.cli.tiled import connect
from specflow.registry.names import DEFAULT_IDENTIFIER_NAME

identified = load("specflow.annotate.identify")
sources = load("specflow.data.sources")
reference = load("specflow.identify.reference")
reader = load("specflow.ingest.reader")
identification = load("specflow.identify.matching")
mixture = load("specflow.identify.mixture")
registered = load("specflow.registry.identifier")
promotion = load("specflow.registry.promotion")
tracking = load("specflow.registry.tracking")

library_app = typer.Typer(help="Build or extend the reference library of named phases.",
                          no_args_is_help=True)

LibraryOpt = Annotated[Path | None, typer.Option(
    "--library", help="Reference library (.nc from 'specflow library build'); default: "
    "the default library, built once and cached.")]
ElementsOpt = Annotated[str | None, typer.Option(
    "--elements", help="Rank only phases made of the sample's elements: a formula or list "
    "('FeO', 'Fe,O'), or 'auto' for each run's own material/sample when it is a formula. "
    "Leave it out to also see gasket or pressure-medium phases.")]
ModelOpt = Annotated[str | None, typer.Option(
    "--model", help="Trained identifier: a .pt from 'specflow train-identifier' or a "
    "registered one, models:/specflow-identify@champion; without it --library is matched "
    "by cosine with a strain scan (no learning).")]


@library_app.command("build")
def library_build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Library file (.nc).")],
    prototypes: Annotated[int | None, typer.Option(
        min=1, help="Only the first N AFLOW prototypes (default: all 288).")] = None,
    substitutions: Annotated[int, typer.Option(
        min=0, help="Element-substituted variants per prototype.")] = 3,
    cif: Annotated[list[Path] | None, typer.Option("--cif", help="Also these CIF files.")
                   ] = None,
    seed: SeedOpt = 0,
) -> None:
    """Build the library: specflow's phases, AFLOW prototypes (+ substitutions), CIFs."""
    library = reference.build_library(substitutions, seed, prototypes, list(cif or []))
    library.save(out)
    Console().print(f"{len(library)} phases, version {library.version} -> {out}")


@library_app.command("add")
def library_add(
    library: Annotated[Path, typer.Argument(help="Library file (.nc) to extend.")],
    cifs: Annotated[list[Path], typer.Argument(help="CIF files.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write here (default: a new file beside, never in place).")
    ] = None,
    pressure: Annotated[float, typer.Option(
        "--pressure", min=0.0, help="GPa at which the CIFs' lattices were measured (their "
        "compression window starts there).")] = 0.0,
) -> None:
    """Add phases from CIF files; writes a new library file (the old one is kept)."""
    old = reference.ReferenceLibrary.load(library)
    new = old.add(reference.cif_entries(cifs, pressure))
    target = out or library.with_name(f"{library.stem}-{new.version}.nc")
    if target.resolve() == library.resolve():
        raise typer.BadParameter("--out must differ from the library: libraries are "
                                 "versioned, not edited in place", param_hint="--out")
    new.save(target)
    Console().print(f"{len(new) - len(old)} phases added ({len(new)} in all), version "
                    f"{new.version} -> {target}")


def train_identifier(
    library: Annotated[Path, typer.Option("--library", help="Reference library (.nc).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Trained identifier (.pt).")],
    steps: Annotated[int, typer.Option(min=1, help="Training mini-batches.")] = 1500,
    holdout: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="Fraction of structure groups held out to report top-1/top-5 "
        "(0: train on every phase).")] = 0.15,
    loss: Annotated[str, typer.Option(help="adacos or cosface.")] = "adacos",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: SeedOpt = 0,
    register: Annotated[bool, typer.Option(
        "--register/--no-register", help="Also track it in MLflow and register a version; "
        "the alias moves to it if it names the gate runs' phases no worse than the holder")
    ] = False,
    name: Annotated[str, typer.Option("--name", help="Registered model name.")
                    ] = DEFAULT_IDENTIFIER_NAME,
    alias: AliasOpt = DEFAULT_ALIAS,
    force: Annotated[bool, typer.Option(
        "--force", help="Move the alias even if the gate runs say it names phases worse "
        "than the holder.")] = False,
    workdir: WorkdirOpt = Path("work"),
) -> None:
    """Train the RegNet1D + AdaCos identifier on physics-augmented library patterns.

    With --holdout, the structure groups held out to report top-1/top-5 are not trained on
    (the saved model never saw them); --holdout 0 trains on every phase for deployment."""
    lib = reference.ReferenceLibrary.load(library)
    train, test = (identification.split_entries(lib, "structure", holdout, seed) if holdout > 0
                   else (None, []))
    ident = identification.PhaseIdentifier(
        identification.IdentifyConfig(steps=steps, loss=loss, device=device, seed=seed))
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]:.3f}")) as progress:
        task = progress.add_task("steps", total=steps, loss=float("nan"))
        ident.fit(lib, train, on_step=lambda i, v: progress.update(task, advance=1, loss=v))
    ident.save(out)
    console = Console()
    scores: dict[str, float] = {}
    if len(test):
        scores = identification.evaluate_identifier(ident, test)
        console.print(f"held-out structures ({len(test)} phases, {scores['queries']} "
                      f"queries): top-1 {scores['model_top1']:.1%}, top-5 "
                      f"{scores['model_top5']:.1%} (library cosine: "
                      f"{scores['raw_top1']:.1%} / {scores['raw_top5']:.1%})")
    console.print(f"identifier ({ident.train_seconds_:.0f} s) -> {out}")
    if register:
        tracking.configure_tracking(workdir)
        try:
            with tracking.quiet_mlflow():
                version = registered.register_identifier(ident, scores, name, alias,
                                                         force=force)
        except promotion.PromotionRefused as err:
            console.print(f"registered, but [red]refused:[/red] {err}")
            raise typer.Exit(1) from None
        console.print(f"registered {name} version {version}"
                      + (f", {name}@{alias} -> version {version}" if alias else ""))


def default_library(refresh: bool = False) -> Any:
    """The default reference library, built with a progress bar the first time (or with
    ``refresh``) and cached."""
    path = reference.default_library_path()
    if path.exists() and not refresh:
        return reference.ReferenceLibrary.load(path)
    with Progress(TextColumn("building the default reference library (once; cached in "
                             f"{path.parent})"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("prototypes", total=None)
        library = reference.default_library(
            refresh=True, progress=lambda done, total: bar.update(task, completed=done,
                                                                  total=total))
    Console(stderr=True).print(f"default library: {len(library)} phases -> {path}")
    return library


def load_identifier(model: str | Path | None, library: Path | None,
                    workdir: Path = Path("work"), elements: str | None = None,
                    refresh: bool = False) -> Any:
    """A trained identifier (file or registered), or the library matcher (``library``, else
    the default library), filtering by ``elements``; a usage error for elements that are
    not a formula or that no library phase is made of."""
    if model is not None and str(model).startswith("models:/"):
        tracking.configure_tracking(workdir, must_exist=True)
        identifier = registered.load_registered_identifier(str(model))
    elif model is not None:
        identifier = identification.PhaseIdentifier.load(model)
    elif library is not None:
        identifier = identification.LibraryMatcher(reference.ReferenceLibrary.load(library))
    else:
        identifier = identification.LibraryMatcher(default_library(refresh))
    if elements not in (None, "auto"):
        try:
            identifier.allowed(elements)  # parses them and checks the library has a phase
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--elements") from exc
    identifier.elements = elements
    return identifier


def identify(
    source: Annotated[str, typer.Argument(
        help="One run (a file, or a folder of its text files), or a run uid with "
             "--tiled-uri.")],
    tiled_uri: Annotated[str | None, typer.Option(
        "--tiled-uri", envvar="TILED_URI", help="Read the run from this Tiled server.")
    ] = None,
    api_key: ApiKeyOpt = None,
    model: ModelOpt = None,
    library: LibraryOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Candidates per segment.")] = 5,
    per_curve: Annotated[bool, typer.Option(
        "--per-curve", help="Also the 'during' segment, the candidates of every curve and "
        "each curve's share of the after phase (two-phase fit).")] = False,
    elements: ElementsOpt = None,
    json_out: JsonOpt = None,
    workdir: WorkdirOpt = Path("work"),
    energy: EnergyOpt = None,
    wavelength: WavelengthOpt = None,
    radial_unit: RadialUnitOpt = None,
    layout: LayoutOpt = None,
    refresh_library: Annotated[bool, typer.Option(
        "--refresh-library", help="Rebuild the cached default library (used when neither "
        "--library nor --model is given).")] = False,
) -> None:
    """Name the phases of a run: top candidates before and after the transition.

    Without --library or --model, the default reference library (1,037 phases) is built
    the first time (about a minute, with a progress bar) and cached beside the corpora
    ($SPECFLOW_CACHE, default ~/.cache/specflow)."""
    identifier = load_identifier(model, library, workdir, elements, refresh_library)
    labels = None
    if tiled_uri:
        run = connect(tiled_uri, api_key)[source]
        ds = reader.run_to_dataset(run, layout=layout)
        labels = identified.published_labels(run)  # the phase model's segments when annotated
    else:
        ds = sources.read_one(source, **read_options(energy, wavelength, radial_unit))
    result = identifier.identify_run(ds, labels=labels, top=top, per_curve=per_curve)
    segments = result["segments"]
    if per_curve and segments.get("before") and segments.get("after"):
        pair = segments["before"][0]["name"], segments["after"][0]["name"]
        if pair[0] != pair[1]:
            used = (identifier.generated(result["no_phase_of"]) if result.get("generated")
                    else identifier)  # generated names live in the library ranked with them
            shares = mixture.phase_shares(used.library_, ds, *pair, identifier.baseline)
            result["shares"] = {"phases": list(pair), **{
                key: [None if np.isnan(v) else round(float(v), 4) for v in shares[key].values]
                for key in ("share", "fit")}}
    if not per_curve:
        for key in ("segments", "pressure"):
            result[key].pop("during", None)
    console = Console()
    for segment, ranked in result["segments"].items():
        lo, hi = result["pressure"][segment]
        span = f"{lo:.1f}–{hi:.1f} GPa" if lo is not None else "pressure unknown"
        table = Table("rank", "phase", "formula", "space group", "score",
                      title=f"{segment} ({span})")
        for i, c in enumerate(ranked, 1):
            table.add_row(str(i), c["name"], c["formula"], c["space_group"],
                          f"{c['score']:.3f}")
        console.print(table)
    console.print(f"library {result['library_version']}, method {result['method']}"
                  + (f", elements {','.join(result['elements'])}" if result["elements"]
                     else ""))
    if result.get("generated"):
        console.print(f"[yellow]the library holds no phase of "
                      f"{', '.join(result['no_phase_of'])}: candidates named '… in …' are "
                      "the bundled prototypes with those elements put in, volumes "
                      "estimated, ranked with the library's other compositions (none is a "
                      "measured phase of the sample; add a CIF with specflow library add)"
                      "[/yellow]")
    elif result.get("no_phase_of"):
        console.print(f"[yellow]the library holds no phase of "
                      f"{', '.join(result['no_phase_of'])}: the candidates above are other "
                      "compositions, guesses at the structure type, not identifications "
                      "(add the phases: specflow library add)[/yellow]")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2))
